package agent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func mongoDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("datafleet_mongodb_"+name, help, labels, nil)
}

// The figures docs/observability.md lists. A figure the server does not give (FerretDB answers
// serverStatus only in part and has no replica set) is absent, not invented.
var (
	mongoUp          = mongoDesc("up", "1 when the agent could read serverStatus as the administrator, else 0 (and nothing else is exported).")
	mongoConnections = mongoDesc("connections", "Client connections: current, and available before the server refuses more.", "state")
	mongoOperations  = mongoDesc("operations_total", "Operations since the server started, by type (serverStatus opcounters).", "type")
	mongoLag         = mongoDesc("replication_lag_seconds", "How far each member's last applied operation trails the primary's (replSetGetStatus; on every member).", "member")
	mongoOplogWindow = mongoDesc("oplog_window_seconds", "Time between the oldest and the newest entry of this member's oplog: how long a member may be away and catch up.")
)

// Export implements fwagent.Exporter with the driver: serverStatus, replSetGetStatus and the
// oplog's ends, read as the operator's administrator over the pod-local connection.
func (e *Engine) Export(ctx context.Context, ch chan<- prometheus.Metric) {
	c, err := e.adminClient()
	var status bson.M
	if err == nil {
		err = c.Database("admin").RunCommand(ctx, bson.D{{Key: "serverStatus", Value: 1}}).Decode(&status)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(mongoUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(mongoUp, prometheus.GaugeValue, 1)
	if conns, ok := status["connections"].(bson.M); ok {
		for _, state := range []string{"current", "available"} {
			if v, ok := number(conns[state]); ok {
				ch <- prometheus.MustNewConstMetric(mongoConnections, prometheus.GaugeValue, v, state)
			}
		}
	}
	if ops, ok := status["opcounters"].(bson.M); ok {
		for kind, n := range ops {
			if v, ok := number(n); ok {
				ch <- prometheus.MustNewConstMetric(mongoOperations, prometheus.CounterValue, v, kind)
			}
		}
	}
	if e.ferret() {
		return // no replica set, no oplog
	}
	exportReplication(ctx, c, ch)
}

func exportReplication(ctx context.Context, c *mongo.Client, ch chan<- prometheus.Metric) {
	var rs struct {
		Members []struct {
			Name       string    `bson:"name"`
			StateStr   string    `bson:"stateStr"`
			OptimeDate time.Time `bson:"optimeDate"`
		} `bson:"members"`
	}
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetStatus", Value: 1}}).Decode(&rs); err == nil {
		var primary time.Time
		for _, m := range rs.Members {
			if m.StateStr == "PRIMARY" {
				primary = m.OptimeDate
			}
		}
		for _, m := range rs.Members {
			if !primary.IsZero() && m.StateStr == "SECONDARY" {
				ch <- prometheus.MustNewConstMetric(mongoLag, prometheus.GaugeValue, max(primary.Sub(m.OptimeDate).Seconds(), 0), m.Name)
			}
		}
	}
	oplog := c.Database("local").Collection("oplog.rs")
	var first, last struct {
		TS bson.Timestamp `bson:"ts"`
	}
	byNatural := func(dir int) *options.FindOneOptionsBuilder {
		return options.FindOne().SetSort(bson.D{{Key: "$natural", Value: dir}}).SetProjection(bson.D{{Key: "ts", Value: 1}})
	}
	if oplog.FindOne(ctx, bson.D{}, byNatural(1)).Decode(&first) == nil && oplog.FindOne(ctx, bson.D{}, byNatural(-1)).Decode(&last) == nil {
		ch <- prometheus.MustNewConstMetric(mongoOplogWindow, prometheus.GaugeValue, float64(last.TS.T)-float64(first.TS.T))
	}
}

// number reads a BSON number of any width.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
