//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// checkTLS connects through the read-write Service the way sslmode=verify-full does, trusting
// only the CA the operator published for the instance, and checks that a client trusting another
// CA is refused.
func checkTLS(t *testing.T, inst *v1alpha1.ServiceInstance, addr string) {
	t.Helper()
	ctx := context.Background()
	if inst.Status.TLS == nil || inst.Status.TLS.CAConfigMap == "" {
		t.Fatalf("status.tls does not name the published CA: %+v", inst.Status.TLS)
	}
	var cm corev1.ConfigMap
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: inst.Namespace, Name: inst.Status.TLS.CAConfigMap}, &cm); err != nil {
		t.Fatal(err)
	}
	host := fmt.Sprintf("%s.%s.svc", inst.Name, inst.Namespace)
	dial := func(caPEM []byte) (bool, error) {
		conn, err := connectVerified(t, connString(addr), caPEM, host)
		if err != nil {
			return false, err
		}
		defer conn.Close(context.Background())
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var ssl bool
		err = conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
		return ssl, err
	}
	testenv.Eventually(t, time.Minute, func() error {
		ssl, err := dial([]byte(cm.Data[certs.CAKey]))
		return expect(err == nil && ssl, "a TLS connection verified against the published CA for "+host, fmt.Sprint(ssl, err))
	})
	other, err := certs.NewAuthority("not the instance's CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(other.CertPEM); err == nil {
		t.Error("a client trusting another CA connected")
	}
}

// connectVerified connects with conn (host: the Service's ClusterIP, which the host reaches) over
// TLS, verifying the server's certificate against caPEM for the Service's name, as
// sslmode=verify-full does.
func connectVerified(t *testing.T, conn string, caPEM []byte, name string) (*pgx.Conn, error) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA is not PEM")
	}
	cfg, err := pgx.ParseConfig(conn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}
	cfg.Fallbacks = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return pgx.ConnectConfig(ctx, cfg)
}

// checkTLSRequired: with spec.tls.required a login in clear is refused, and the primary's
// replication connections are all TLS (the replicas verified its certificate to open them).
func checkTLSRequired(t *testing.T, inst *v1alpha1.ServiceInstance, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clear := strings.Replace(connString(addr), "sslmode=prefer", "sslmode=disable", 1)
	if c, err := pgx.Connect(ctx, clear); err == nil {
		c.Close(ctx)
		t.Error("a login in clear was accepted with tls.required")
	} else if !strings.Contains(err.Error(), "no encryption") {
		t.Errorf("a login in clear: want a refusal for no encryption, got %v", err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		got := psql(t, inst.Namespace, inst.Status.CurrentPrimary,
			"SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)")
		return expect(got == "2/2", "both replicas stream over TLS", got)
	})
	t.Logf("TLS REQUIRED: a login in clear was refused; both replicas stream over TLS, verifying the primary")
}

// checkReload changes a parameter PostgreSQL applies with a reload: every member serves the new
// value and no pod or postmaster restarts.
func checkReload(t *testing.T, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	pods := []string{"ledger-0", "ledger-1", "ledger-2"}
	started := map[string]string{}
	uids := map[string]string{}
	for _, p := range pods {
		started[p] = psql(t, inst.Namespace, p, "SELECT pg_postmaster_start_time()")
		uids[p] = podUID(t, inst.Namespace, p)
	}
	changedAt := time.Now()
	patchInstance(t, inst, func(s *v1alpha1.ServiceInstanceSpec) { s.Parameters = map[string]string{"work_mem": "12MB"} })
	// The kubelet refreshes mounted ConfigMaps on its sync period (up to about a minute here).
	testenv.Eventually(t, 3*time.Minute, func() error {
		var got []string
		for _, p := range pods {
			got = append(got, psql(t, inst.Namespace, p, "SHOW work_mem"))
		}
		return expect(slices.Equal(got, []string{"12MB", "12MB", "12MB"}), "every member has work_mem 12MB", fmt.Sprint(got))
	})
	t.Logf("RELOAD: work_mem reached every member %s after the change", time.Since(changedAt).Round(time.Second))
	for _, p := range pods {
		if got := psql(t, inst.Namespace, p, "SELECT pg_postmaster_start_time()"); got != started[p] || podUID(t, inst.Namespace, p) != uids[p] {
			t.Errorf("%s restarted for a reload parameter (postmaster started %s, before %s)", p, got, started[p])
		}
	}
}

// rollPods applies a change that needs new pods and waits until all three were replaced and the
// instance is Ready; it returns the order of replacement, which must end with the primary.
func rollPods(t *testing.T, inst *v1alpha1.ServiceInstance, rw, what string, firstID int, change func(*v1alpha1.ServiceInstanceSpec)) {
	t.Helper()
	rollPodsAfter(t, inst, rw, what, firstID, func() { patchInstance(t, inst, change) })
}

// rollPodsAfter is rollPods for any change that rolls the pods (a catalog's image, say).
func rollPodsAfter(t *testing.T, inst *v1alpha1.ServiceInstance, rw, what string, firstID int, change func()) {
	t.Helper()
	ctx := context.Background()
	if inst.Spec.Primary != "" {
		// A switchover spec.primary asks for may still be under way after the last change.
		waitMembers(t, inst, inst.Spec.Primary, "streaming (synchronous)")
	}
	primary := inst.Status.CurrentPrimary
	w := startWriter(ctx, rw, firstID)
	uids := map[string]string{}
	for _, p := range []string{"ledger-0", "ledger-1", "ledger-2"} {
		uids[p] = podUID(t, inst.Namespace, p)
	}
	change()
	var order []string
	testenv.Eventually(t, 5*time.Minute, func() error {
		for name, uid := range uids {
			var p corev1.Pod
			if err := env.c.Get(ctx, client.ObjectKey{Namespace: inst.Namespace, Name: name}, &p); err == nil &&
				string(p.UID) != uid && !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		return expect(len(order) == 3 && inst.Status.Phase == v1alpha1.PhaseReady && inst.Status.ObservedGeneration == inst.Generation,
			"every pod replaced and the instance Ready", fmt.Sprintf("replaced %v, phase %s", order, inst.Status.Phase))
	})
	t.Logf("ROLLING UPDATE (%s): pods replaced in the order %v; %s", what, order, w.stop())
	w.checkNoneLost(t, rw)
	if order[2] != primary {
		t.Errorf("%s: pods were replaced in the order %v; the primary (%s) must be last", what, order, primary)
	}
}
