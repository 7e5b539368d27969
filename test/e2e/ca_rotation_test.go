//go:build e2e

package e2e

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/certs"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// checkCARotation rotates the CA of a PostgreSQL instance with tls.required (replicas verify the
// primary against ca.crt) while a writer inserts through the Service and an application holds a
// connection verified against the CA it read from its binding's Secret before the rotation. The
// binding's Secret gives both CAs during the rotation; the application's connection stays up; it
// reconnects with the Secret's ca.crt at every step and afterwards; no insert is lost and the
// replicas stream again over TLS. The operator runs with a short overlap here (operator_test.go).
func checkCARotation(t *testing.T, inst *v1alpha1.ServiceInstance, addr string) {
	t.Helper()
	ctx := context.Background()
	b := createBinding(t, inst.Namespace, "rotation-app", inst.Name, v1alpha1.RoleReadWrite, "app")
	secret := waitBound(t, b, nil)
	before := secret.Data[certs.CAKey]
	if n := countPEM(before); n != 1 {
		t.Fatalf("the binding's ca.crt holds %d certificates before the rotation", n)
	}
	// The application: verified against the binding's ca.crt, for the Service's name.
	dial := func(s *corev1.Secret, caPEM []byte) (*pgx.Conn, error) {
		u := url.URL{Scheme: "postgres", User: url.UserPassword(string(s.Data["username"]), string(s.Data["password"])), Host: addr,
			Path: "/" + string(s.Data["database"]), RawQuery: "sslmode=verify-full"}
		return connectVerified(t, u.String(), caPEM, inst.Name+"."+inst.Namespace+".svc")
	}
	var held *pgx.Conn
	testenv.Eventually(t, time.Minute, func() (err error) { held, err = dial(secret, before); return err })
	defer held.Close(ctx)
	// Ids of its own: the chaos step's writers start at 400000, ten thousand each.
	w := startWriter(ctx, addr, 1000000)

	annotateInstance(t, inst, certs.AnnotationRotateCA, strconv.FormatInt(time.Now().Unix(), 10))
	started := time.Now()
	for _, step := range []string{certs.RotationTrustingNew, certs.RotationServingNew, ""} {
		waitInstance(t, inst, waitTimeout, "CA rotation step "+fmt.Sprintf("%q", step), func() (bool, string) {
			return inst.Status.TLS != nil && inst.Status.TLS.CARotation == step, fmt.Sprintf("tls %+v", inst.Status.TLS)
		})
		want := 2
		if step == "" {
			want = 1
		}
		// The binding's Secret follows the published CA; an application that re-reads it connects.
		testenv.Eventually(t, 2*time.Minute, func() error {
			if err := env.c.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Status.Binding.Name}, secret); err != nil {
				return err
			}
			if n := countPEM(secret.Data[certs.CAKey]); n != want {
				return expect(false, fmt.Sprintf("the binding's ca.crt holds %d CAs", want), fmt.Sprint(n))
			}
			conn, err := dial(secret, secret.Data[certs.CAKey])
			if err != nil {
				return err
			}
			return conn.Close(ctx)
		})
		t.Logf("CA ROTATION: %q after %s: the binding's ca.crt holds %d CA(s) and a new connection verified with it", step, time.Since(started).Round(time.Second), want)
	}
	if string(secret.Data[certs.CAKey]) == string(before) {
		t.Fatal("the rotation ended with the same CA")
	}
	var one int
	if err := held.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("the connection opened before the rotation broke: %v", err)
	}
	if _, err := dial(secret, before); err == nil {
		t.Error("after the rotation the server is still verified by the old CA alone")
	}
	report := w.stop()
	w.checkNoneLost(t, addr)
	waitMembers(t, inst, inst.Status.CurrentPrimary, "streaming (synchronous)")
	checkTLSRequired(t, inst, addr)
	t.Logf("CA ROTATION: done in %s; the connection opened before stayed up; writer: %s", time.Since(started).Round(time.Second), report)
	fmt.Printf("CA ROTATION (tls.required, 3 pods): %s\n", report)
}

func countPEM(b []byte) int {
	n := 0
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return n
		}
		n++
	}
}

// annotateInstance sets an annotation on the instance.
func annotateInstance(t *testing.T, inst *v1alpha1.ServiceInstance, key, value string) {
	t.Helper()
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		if inst.Annotations == nil {
			inst.Annotations = map[string]string{}
		}
		inst.Annotations[key] = value
		return env.c.Update(ctx, inst)
	})
}
