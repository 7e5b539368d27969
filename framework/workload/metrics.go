package workload

import (
	"maps"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
)

// MetricsPortName names the agent's metrics port (fwagent.PathMetrics): the instance's
// NetworkPolicy admits the platform's scrapers on it, and the chart's PodMonitor scrapes it.
const MetricsPortName = "metrics"

var (
	// The endpoint is turned on by a variable, which an older agent ignores (fwagent.EnvMetricsAddress).
	metricsEnv  = corev1.EnvVar{Name: fwagent.EnvMetricsAddress, Value: ":" + strconv.Itoa(fwagent.MetricsPort)}
	metricsPort = corev1.ContainerPort{Name: MetricsPortName, ContainerPort: fwagent.MetricsPort, Protocol: corev1.ProtocolTCP}
	// metricsAnnotations are the Prometheus-style annotations for scrapers configured by them
	// (kubernetes_sd_configs with role pod) rather than by a PodMonitor.
	metricsAnnotations = map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(fwagent.MetricsPort),
		"prometheus.io/scheme": "https",
		"prometheus.io/path":   fwagent.PathMetrics,
	}
)

func withMetricsAnnotations(annotations map[string]string) map[string]string {
	out := maps.Clone(annotations)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, metricsAnnotations)
	return out
}

// ServesMetrics reports whether pods of template serve the agent's metrics.
func ServesMetrics(template *corev1.PodTemplateSpec) bool {
	return slices.ContainsFunc(template.Spec.Containers, func(c corev1.Container) bool {
		return slices.Contains(c.Env, metricsEnv)
	})
}

// WithoutMetrics takes the metrics endpoint out of template, as pods made by an operator that
// predates it run: an operator upgrade holds it back until the pods restart anyway
// (framework/instance, holdRestarts), instead of restarting the whole fleet for it.
func WithoutMetrics(template *corev1.PodTemplateSpec) {
	for i := range template.Spec.Containers {
		c := &template.Spec.Containers[i]
		if !slices.Contains(c.Env, metricsEnv) {
			continue
		}
		c.Env = slices.DeleteFunc(slices.Clone(c.Env), func(e corev1.EnvVar) bool { return e == metricsEnv })
		c.Ports = slices.DeleteFunc(slices.Clone(c.Ports), func(p corev1.ContainerPort) bool { return p.Name == MetricsPortName })
	}
	for k := range metricsAnnotations {
		delete(template.Annotations, k)
	}
	if len(template.Annotations) == 0 {
		template.Annotations = nil
	}
}
