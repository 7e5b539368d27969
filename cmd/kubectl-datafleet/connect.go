package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// connection is where a binding's Secret says its application connects, and as whom.
type connection struct {
	kind, service, namespace        string
	port                            int
	user, password, database, caPEM string
}

// bindingConnection reads the binding's Secret. Only a binding the operator has written a Secret
// for connects: the Secret's name is in its status, where a servicebinding.io runtime reads it.
func bindingConnection(ctx context.Context, c client.Reader, ns, name string) (connection, error) {
	b := &v1alpha1.ServiceBinding{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b); err != nil {
		return connection{}, err
	}
	if b.Status.Binding == nil || b.Status.Binding.Name == "" {
		why := "it is not Ready yet"
		if cond := meta.FindStatusCondition(b.Status.Conditions, v1alpha1.ConditionReady); cond != nil {
			why = cond.Reason + ": " + cond.Message
		}
		return connection{}, fmt.Errorf("servicebinding %s/%s has no Secret yet (%s)", ns, name, why)
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: b.Status.Binding.Name}, s); err != nil {
		return connection{}, fmt.Errorf("the binding's Secret: %w", err)
	}
	d := func(k string) string { return string(s.Data[k]) }
	conn := connection{kind: d("type"), user: d("username"), password: d("password"), database: d("database"), caPEM: d("ca.crt")}
	if conn.kind != "postgresql" {
		return conn, fmt.Errorf("connect opens psql on PostgreSQL bindings; servicebinding %s/%s is of type %q: its Secret %s holds the host, port, username and password for that engine's own client",
			ns, name, conn.kind, s.Name)
	}
	// The host is the client Service's name in the cluster's DNS: <service>.<namespace>.svc.
	parts := strings.Split(d("host"), ".")
	port, err := strconv.Atoi(d("port"))
	if len(parts) < 3 || parts[2] != "svc" || err != nil {
		return conn, fmt.Errorf("the binding's Secret %s names host %q port %q, not a Service of this cluster", s.Name, d("host"), d("port"))
	}
	conn.service, conn.namespace, conn.port = parts[0], parts[1], port
	return conn, nil
}

// servingPod is a ready pod behind the Service, and the pod's port for its port: where the
// Service would send the client (for PostgreSQL, the primary).
func servingPod(ctx context.Context, c client.Reader, conn connection) (string, int, error) {
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: conn.namespace, Name: conn.service}, svc); err != nil {
		return "", 0, fmt.Errorf("the binding's Service: %w", err)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == conn.port })
	if i < 0 || len(svc.Spec.Selector) == 0 {
		return "", 0, fmt.Errorf("service %s/%s has no port %d with a selector", conn.namespace, conn.service, conn.port)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(conn.namespace), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(svc.Spec.Selector)}); err != nil {
		return "", 0, err
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	target := svc.Spec.Ports[i].TargetPort
	for _, p := range pods.Items {
		if !workload.PodReady(&p) {
			continue
		}
		if target.IntValue() > 0 {
			return p.Name, target.IntValue(), nil
		}
		for _, ctr := range p.Spec.Containers {
			for _, cp := range ctr.Ports {
				if cp.Name == target.String() || target.String() == "" && int(cp.ContainerPort) == conn.port {
					return p.Name, int(cp.ContainerPort), nil
				}
			}
		}
	}
	return "", 0, fmt.Errorf("service %s/%s has no ready pod to connect to", conn.namespace, conn.service)
}

// clientEnv is the environment psql runs with: the caller's without any PG variable (a PGSERVICE
// or PGPASSFILE of the caller's must not redirect it), and the binding's connection through the
// forwarded port. The password is in the environment only: no command line (ps) or terminal
// shows it. With a CA, the server's certificate is verified against it (not its name: psql
// reaches it as 127.0.0.1).
func clientEnv(conn connection, local int, caFile string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "PG") })
	env = append(env, "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(local), "PGUSER="+conn.user, "PGPASSWORD="+conn.password,
		"PGDATABASE="+conn.database, "PGAPPNAME=kubectl-datafleet")
	if caFile != "" {
		return append(env, "PGSSLMODE=verify-ca", "PGSSLROOTCERT="+caFile)
	}
	return append(env, "PGSSLMODE=prefer")
}

// runConnect opens psql (clientPath) with args, connected as the binding.
func runConnect(ctx context.Context, cfg *rest.Config, c client.Reader, ns, name, clientPath string, args []string, stdout io.Writer) error {
	conn, err := bindingConnection(ctx, c, ns, name)
	if err != nil {
		return err
	}
	pod, port, err := servingPod(ctx, c, conn)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	local, stop, err := forward(ctx, cfg, cs, conn.namespace, pod, port)
	if err != nil {
		return err
	}
	defer stop()
	caFile := ""
	if conn.caPEM != "" {
		dir, err := os.MkdirTemp("", "kubectl-datafleet-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		caFile = filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(caFile, []byte(conn.caPEM), 0o600); err != nil {
			return err
		}
	}
	cmd := exec.CommandContext(ctx, clientPath, args...)
	cmd.Env = clientEnv(conn, local, caFile)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", clientPath, err)
	}
	return nil
}
