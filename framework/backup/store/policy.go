package store

import (
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
)

// Policy is the platform team's say over which stores tenants may use: a BackupStore is
// namespaced and tenant-written, but the operator probes it, reads its manifests and deletes its
// objects from its own pod. Without a credentials Secret that would be with the operator's own
// cloud identity (IRSA, GKE workload identity, an Azure managed identity): a tenant could write to,
// read from and learn about buckets that identity reaches. An `endpoint` in the URL would send
// the operator's requests to any host and port inside the cluster. Both are refused unless the
// policy allows them. The zero Policy allows neither.
type Policy struct {
	// AllowAmbientCredentials lets stores without a credentials Secret be used.
	AllowAmbientCredentials bool
	// Endpoints are the custom endpoints allowed, as host:port patterns (path.Match: `*` is any
	// run of characters but `/`; for example `minio.*.svc:9000`); the port is the scheme's default
	// (80, 443) when the endpoint has none.
	Endpoints []string
	// ImportNamespaces are the namespaces whose BackupStores may import the backups they hold
	// (spec.importBackups) as Backups: an import makes what a store holds restorable there.
	ImportNamespaces []string
}

// ImportAllowed says whether Backups may be imported into namespace ns.
func (p Policy) ImportAllowed(ns string) error {
	if slices.Contains(p.ImportNamespaces, ns) {
		return nil
	}
	return fmt.Errorf("importing backups into namespace %q is not allowed: the platform lists the namespaces that may in the operator's setting backupStores.importNamespaces", ns)
}

// endpointParams are the URL parameters that send the requests elsewhere than the provider's own
// service: s3blob's endpoint, azureblob's domain (with localemu for its emulator).
var endpointParams = []string{"endpoint", "domain"}

// Check refuses a store URL the policy does not allow, with hasCredentials telling whether the
// store names a credentials Secret. The error says which setting would allow it.
func (p Policy) Check(rawURL string, hasCredentials bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("store url: %w", err)
	}
	if u.User != nil {
		return fmt.Errorf("the store url carries user information: credentials go in the credentials Secret")
	}
	if !hasCredentials && !p.AllowAmbientCredentials && Shareable(u.Scheme) {
		return fmt.Errorf("%s:// stores without a credentials Secret use the operator's own cloud identity, which this platform does not lend (the operator's setting backupStores.allowAmbientCredentials)", u.Scheme)
	}
	q := u.Query()
	for _, param := range endpointParams {
		v := q.Get(param)
		if v == "" {
			continue
		}
		hostport, err := endpointHostPort(v)
		if err != nil {
			return fmt.Errorf("the store url's %s: %w", param, err)
		}
		if !p.allows(hostport) {
			return fmt.Errorf("the store url's %s %s is not among the endpoints this platform allows (the operator's setting backupStores.allowedEndpoints)", param, hostport)
		}
	}
	return nil
}

func (p Policy) allows(hostport string) bool {
	for _, pattern := range p.Endpoints {
		if ok, _ := path.Match(strings.ToLower(pattern), hostport); ok {
			return true
		}
	}
	return false
}

// endpointHostPort is an endpoint's host:port, lower case, with the scheme's default port.
func endpointHostPort(v string) (string, error) {
	if !strings.Contains(v, "://") {
		v = "https://" + v
	}
	e, err := url.Parse(v)
	if err != nil || e.Hostname() == "" {
		return "", fmt.Errorf("%q is not a URL with a host", v)
	}
	port := e.Port()
	if port == "" {
		port = map[string]string{"http": "80"}[e.Scheme]
		if port == "" {
			port = "443"
		}
	}
	return strings.ToLower(e.Hostname()) + ":" + port, nil
}

// Shareable reports whether a store scheme's objects can be seen by other pods: file:// and
// mem:// live in one process's filesystem or memory (the store controller refuses them as
// NotShareable; the policy has nothing to say about their credentials).
func Shareable(scheme string) bool { return scheme != "file" && scheme != "mem" }

// ShareableURL reports whether a store URL's objects can be seen by other pods (Shareable).
func ShareableURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && Shareable(u.Scheme)
}
