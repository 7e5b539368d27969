// Package names derives deterministic, length-safe names and the standard labels for the objects
// the framework creates. Names never depend on cache state, so a stale cache cannot cause a
// duplicate child.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Kubernetes name limits that children must respect.
const (
	// MaxDNSLabel is the limit for Service names and label values.
	MaxDNSLabel = 63
	// MaxStatefulSet leaves room for the 11-character controller-revision-hash suffix that the
	// StatefulSet controller appends in a label value.
	MaxStatefulSet = 52
)

// Child returns "<instance>-<suffix>" (or the instance name alone for an empty suffix), shortened
// to max characters with a stable hash when it would not fit.
func Child(instance, suffix string, max int) string {
	name := instance
	if suffix != "" {
		name = instance + "-" + suffix
	}
	return Fit(name, max)
}

// Fit shortens name to at most max characters, replacing the tail with an 8-character hash of the
// whole name so that distinct long names stay distinct.
func Fit(name string, max int) string {
	if len(name) <= max {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:])[:8]
	keep := max - len(h) - 1
	prefix := strings.TrimRight(name[:keep], "-.")
	return prefix + "-" + h
}

// ServiceHost is a Service's name in the cluster's DNS, as clients inside the cluster reach it
// (and as an instance's server certificate names it).
func ServiceHost(service, namespace string) string { return service + "." + namespace + ".svc" }
