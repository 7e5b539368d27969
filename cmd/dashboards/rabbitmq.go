package main

// rabbitmq is the RabbitMQ dashboard: the broker's own figures (rabbitmq_prometheus, relayed by
// each node's agent) and what the agents add (the cluster as each node sees it, quorum-critical
// nodes).
func rabbitmq() dashboard {
	b, sel := engineBoard("rabbitmq", "Datafleet: RabbitMQ", "RabbitMQ instances: the broker's own figures (rabbitmq_prometheus) and the agents' (datafleet_rabbitmq_*).", `datafleet_rabbitmq_up`)
	b.row("Cluster")
	b.add("stat", "Nodes ready", "", "none", 6, 4, q(sel(`sum(datafleet_member_ready{SEL})`), ""))
	b.add("stat", "Nodes stopped", "Nodes of the cluster that do not run, as the nodes that run see it.", "none", 6, 4,
		q(sel(`max(datafleet_rabbitmq_cluster_nodes{SEL,state="stopped"})`), ""))
	b.add("stat", "Quorum-critical nodes", "Nodes whose stop would leave a quorum queue without a majority: a restart waits.", "none", 6, 4,
		q(sel(`sum(datafleet_rabbitmq_quorum_critical{SEL})`), ""))
	b.add("stat", "Broker figures relayed", "1: every node's rabbitmq_prometheus answered its agent.", "none", 6, 4,
		q(sel(`min(datafleet_member_exporter_up{SEL})`), ""))

	b.row("Clients and messages")
	b.add("timeseries", "Connections", "", "none", 8, 8, q(sel(`sum by (pod) (rabbitmq_connections{SEL})`), "{{pod}}"))
	b.add("timeseries", "Channels", "", "none", 8, 8, q(sel(`sum by (pod) (rabbitmq_channels{SEL})`), "{{pod}}"))
	b.add("timeseries", "Queues", "Queues whose leader or master is on each node.", "none", 8, 8, q(sel(`sum by (pod) (rabbitmq_queues{SEL})`), "{{pod}}"))
	b.add("timeseries", "Messages waiting", "Ready for a consumer, and delivered but not acknowledged yet.", "none", 12, 8,
		q(sel(`sum by (serviceinstance) (rabbitmq_queue_messages_ready{SEL})`), "{{serviceinstance}} ready"),
		q(sel(`sum by (serviceinstance) (rabbitmq_queue_messages_unacked{SEL})`), "{{serviceinstance}} unacknowledged"))
	b.add("timeseries", "Messages per second", "Received from publishers, delivered to consumers.", "ops", 12, 8,
		q(sel(`sum by (serviceinstance) (rate(rabbitmq_global_messages_received_total{SEL}[5m]))`), "{{serviceinstance}} received"),
		q(sel(`sum by (serviceinstance) (rate(rabbitmq_global_messages_delivered_total{SEL}[5m]))`), "{{serviceinstance}} delivered"))

	b.row("Resources")
	b.add("timeseries", "Memory against its watermark", "Above the watermark the node blocks publishers.", "percentunit", 8, 8,
		q(sel(`rabbitmq_process_resident_memory_bytes{SEL} / rabbitmq_resident_memory_limit_bytes{SEL}`), "{{pod}}"))
	b.add("timeseries", "Disk free", "Below its limit the node blocks publishers.", "bytes", 8, 8,
		q(sel(`rabbitmq_disk_space_available_bytes{SEL}`), "{{pod}}"))
	b.add("timeseries", "Volume used", "", "percentunit", 8, 8,
		q(sel(`1 - datafleet_member_volume_available_bytes{SEL} / datafleet_member_volume_size_bytes{SEL}`), "{{pod}}"))
	return b.d
}
