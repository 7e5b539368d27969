// Package fleet exports the platform team's view of every instance as Prometheus metrics, from the
// operator's cache: what runs (engine, version, plan, phase), what waits (pending restarts, a
// version's sundown, certificates' ends), and what protects the data (the last good backup of
// every plan, the last drill). Nothing is stored: each scrape reads the cached objects, without
// copying them, and computes the figures afresh. docs/observability.md lists them.
package fleet

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/framework/backup/schedule"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("datafleet_"+name, help, labels, nil)
}

// Label names: "instance" is Prometheus's own (the scraped target), so the objects are named by
// their kind.
var instanceLabels = []string{"namespace", "serviceinstance", "engine"}

func withInstance(labels ...string) []string {
	return append(append([]string(nil), instanceLabels...), labels...)
}

var (
	instanceInfo = desc("instance_info", "Every instance, with its version, plan and phase (always 1): count by engine, version, plan or phase.",
		withInstance("version", "serviceplan", "phase")...)
	instanceReady         = desc("instance_ready", "1 while the instance's Ready condition is True, else 0.", instanceLabels...)
	instanceReplicas      = desc("instance_replicas", "Pods the instance should run.", instanceLabels...)
	instanceReadyReplicas = desc("instance_ready_replicas", "Pods of the instance that are ready.", instanceLabels...)
	instancePrimary       = desc("instance_primary", "The pod serving writes, for engines with a primary (always 1; absent while there is none).",
		withInstance("pod")...)
	instancePendingRestart = desc("instance_pending_restart", "A restart the operator holds back, by reason (always 1; docs/upgrades.md).",
		withInstance("reason")...)
	instanceSundown = desc("instance_version_sundown_timestamp_seconds",
		"When the instance's version leaves its catalog (Unix time; absent when the catalog sets no sundown).", withInstance("version")...)
	instanceCertificateExpiry = desc("instance_certificate_expiry_timestamp_seconds",
		"When the instance's server certificate or CA ends (Unix time; for instances with spec.tls).", withInstance("certificate")...)
	instanceMember = desc("instance_member", "Every pod of the instance as the operator last saw it (status.members), with its role and state (always 1).",
		withInstance("pod", "role", "state")...)
	bindings = desc("instance_bindings", "ServiceBindings of the instance, by whether they are Ready.", withInstance("ready")...)
	// A binding may be in another namespace than its instance: namespace is the binding's.
	bindingIssued = desc("binding_credentials_issued_timestamp_seconds",
		"When the binding's current credentials were first ready (Unix time): its first, or its last rotation (absent for bindings made ready before Datafleet recorded it, until their next rotation).",
		"namespace", "servicebinding", "serviceinstance", "engine")

	planLabels   = []string{"namespace", "backupplan", "serviceinstance"}
	planInterval = desc("backupplan_interval_seconds",
		"Time between two backups the plan's schedule asks for (the next two slots): a backup older than twice this is late.", planLabels...)
	planLastSuccess = desc("backupplan_last_success_timestamp_seconds",
		"When the plan's last successful backup completed (Unix time; absent before the first).", planLabels...)
	planLastSize  = desc("backupplan_last_success_size_bytes", "Size of the plan's last successful backup in the store.", planLabels...)
	planSuspended = desc("backupplan_suspended", "1 when the plan is suspended, else 0.", planLabels...)
	drillPassed   = desc("backupplan_drill_passed", "1 when the plan's last finished restore drill passed, 0 when it failed (absent before the first).", planLabels...)
	drillSeconds  = desc("backupplan_drill_duration_seconds",
		"How long the plan's last finished drill took, from its start to the restored instance checked: the measured restore time.", planLabels...)
	drillLast = desc("backupplan_drill_last_timestamp_seconds", "When the plan's last drill finished (Unix time).", planLabels...)
	drillRPO  = desc("backupplan_drill_recovery_point_seconds",
		"The data-loss window the plan's last point-in-time drill achieved: how long after its target the instance's archive reached it.", planLabels...)
	drillRTO = desc("backupplan_drill_recovery_time_seconds",
		"The restore time the plan's last drill measured: from the recovery's start (the restored instance made) until it was ready.", planLabels...)
)

// Collector computes the fleet's figures from Reader (the manager's cache) on every scrape.
type Collector struct {
	Reader client.Reader
}

// Describe sends nothing: the collector is unchecked, its series come and go with the objects.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// listTimeout bounds a scrape's reads (the cache answers from memory; it waits only before it
// has synced).
const listTimeout = 10 * time.Second

func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), listTimeout)
	defer cancel()
	// Read-only views of the cache's objects: copying every instance on every scrape would cost
	// as much memory as the cache itself at a large fleet.
	noCopy := client.UnsafeDisableDeepCopy
	var insts v1alpha1.ServiceInstanceList
	var cats v1alpha1.VersionCatalogList
	var sbs v1alpha1.ServiceBindingList
	var plans v1alpha1.BackupPlanList
	var backups v1alpha1.BackupList
	for _, l := range []client.ObjectList{&insts, &cats, &sbs, &plans, &backups} {
		if err := c.Reader.List(ctx, l, noCopy); err != nil {
			log.FromContext(ctx).Error(err, "fleet metrics: listing from the cache")
			return
		}
	}
	sundowns := map[[2]string]time.Time{} // engine, version
	for _, cat := range cats.Items {
		for _, v := range cat.Spec.Versions {
			if v.Sundown != nil {
				sundowns[[2]string{cat.Spec.Engine, v.Version}] = v.Sundown.Time
			}
		}
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	engines := map[[2]string]string{} // namespace, name → engine
	for i := range insts.Items {
		inst := &insts.Items[i]
		id := []string{inst.Namespace, inst.Name, inst.Spec.Engine}
		engines[[2]string{inst.Namespace, inst.Name}] = inst.Spec.Engine
		version := inst.Status.Version
		if version == "" {
			version = inst.Spec.Version
		}
		gauge(instanceInfo, 1, append(id, version, inst.Spec.Plan, string(inst.Status.Phase))...)
		gauge(instanceReady, boolValue(meta.IsStatusConditionTrue(inst.Status.Conditions, v1alpha1.ConditionReady)), id...)
		gauge(instanceReplicas, float64(inst.Status.Replicas), id...)
		gauge(instanceReadyReplicas, float64(inst.Status.ReadyReplicas), id...)
		if p := inst.Status.CurrentPrimary; p != "" {
			gauge(instancePrimary, 1, append(id, p)...)
		}
		for _, m := range inst.Status.Members {
			gauge(instanceMember, 1, append(id, m.Name, m.Role, m.State)...)
		}
		for _, r := range inst.Status.PendingRestarts {
			gauge(instancePendingRestart, 1, append(id, r.Reason)...)
		}
		if t, ok := sundowns[[2]string{inst.Spec.Engine, version}]; ok {
			gauge(instanceSundown, unix(t), append(id, version)...)
		}
		if tls := inst.Status.TLS; tls != nil {
			if tls.ServerCertificateNotAfter != nil {
				gauge(instanceCertificateExpiry, unix(tls.ServerCertificateNotAfter.Time), append(id, "server")...)
			}
			if tls.CANotAfter != nil {
				gauge(instanceCertificateExpiry, unix(tls.CANotAfter.Time), append(id, "ca")...)
			}
		}
	}
	c.collectBindings(&sbs, engines, gauge)
	c.collectPlans(&plans, &backups, gauge)
}

func (c *Collector) collectBindings(sbs *v1alpha1.ServiceBindingList, engines map[[2]string]string, gauge func(*prometheus.Desc, float64, ...string)) {
	type key struct{ ns, name, ready string }
	counts := map[key]int{}
	for _, sb := range sbs.Items {
		ns := sb.Spec.InstanceRef.Namespace
		if ns == "" {
			ns = sb.Namespace
		}
		ready := "false"
		if meta.IsStatusConditionTrue(sb.Status.Conditions, v1alpha1.ConditionReady) {
			ready = "true"
		}
		counts[key{ns, sb.Spec.InstanceRef.Name, ready}]++
		if e, ok := engines[[2]string{ns, sb.Spec.InstanceRef.Name}]; ok && sb.Status.CredentialsIssued != nil {
			gauge(bindingIssued, unix(sb.Status.CredentialsIssued.Time), sb.Namespace, sb.Name, sb.Spec.InstanceRef.Name, e)
		}
	}
	for k, n := range counts {
		if e, ok := engines[[2]string{k.ns, k.name}]; ok { // a binding of no instance is the binding's problem
			gauge(bindings, float64(n), k.ns, k.name, e, k.ready)
		}
	}
}

func (c *Collector) collectPlans(plans *v1alpha1.BackupPlanList, backups *v1alpha1.BackupList, gauge func(*prometheus.Desc, float64, ...string)) {
	now := time.Now()
	byName := map[[2]string]*v1alpha1.Backup{}
	for i := range backups.Items {
		b := &backups.Items[i]
		byName[[2]string{b.Namespace, b.Name}] = b
	}
	for _, p := range plans.Items {
		id := []string{p.Namespace, p.Name, p.Spec.InstanceRef.Name}
		if s, err := schedule.Parse(p.Spec.Schedule, p.Spec.TimeZone, now); err == nil {
			first := s.Next(now)
			gauge(planInterval, s.Next(first).Sub(first).Seconds(), id...)
		}
		gauge(planSuspended, boolValue(p.Spec.Suspend), id...)
		if b := byName[[2]string{p.Namespace, p.Status.LastSuccessfulBackup}]; b != nil && b.Status.CompletionTime != nil {
			gauge(planLastSuccess, unix(b.Status.CompletionTime.Time), id...)
			gauge(planLastSize, float64(b.Status.SizeBytes), id...)
		}
		if d := p.Status.LastDrill; d != nil && d.Result != controllers.DrillRunning && d.CompletionTime != nil {
			gauge(drillPassed, boolValue(d.Result == controllers.DrillPassed), id...)
			gauge(drillLast, unix(d.CompletionTime.Time), id...)
			if d.StartTime != nil {
				gauge(drillSeconds, d.CompletionTime.Sub(d.StartTime.Time).Seconds(), id...)
			}
			if d.RecoveryPoint != nil {
				gauge(drillRPO, d.RecoveryPoint.Seconds(), id...)
			}
			if d.RecoveryTime != nil {
				gauge(drillRTO, d.RecoveryTime.Seconds(), id...)
			}
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
