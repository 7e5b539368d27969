// Package admission fuzzes what a tenant can write through everything that admits it: the CRDs'
// schemas and CEL rules on a real API server, and the validating webhook of the real engines
// behind it, as the chart installs it.
//
//	go test ./test/admission/                                  # the seeds (make test)
//	go test -fuzz FuzzAdmission -fuzztime 10m ./test/admission/ # fuzzing
package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/engines/mongodb"
	"github.com/datafleet-dev/datafleet/engines/postgres"
	"github.com/datafleet-dev/datafleet/engines/rabbitmq"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// kinds a tenant writes, in the order the fuzzer's first byte picks them.
var kinds = []string{"ServiceInstance", "ServiceBinding", "BackupPlan", "Restore"}

// FuzzAdmission sends a spec of one of the tenant's kinds, as a dry-run create, through the API
// server: whatever the spec, nothing panics (a webhook that panics answers 500), and every
// refusal is an Invalid (422) whose every cause names the field it is about.
func FuzzAdmission(f *testing.F) {
	env := testenv.Start(f)
	testenv.CreateChartCatalogs(f, env.Client)
	testenv.ServeWebhook(f, env, cache.Options{}, store.Policy{Endpoints: []string{"minio.*.svc:9000"}},
		[]engine.Engine{postgres.New(), rabbitmq.New(), mongodb.New()}...)
	ctx := context.Background()
	const ns = "tenant"
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		f.Fatal(err)
	}
	for _, seed := range seeds(f) {
		f.Add(seed.kind, seed.spec)
	}
	f.Fuzz(func(t *testing.T, kind uint8, spec []byte) {
		var fields map[string]any
		if json.Unmarshal(spec, &fields) != nil || fields == nil {
			return // not an object: the client would not send it
		}
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "datafleet.dev/v1alpha1",
			"kind":       kinds[int(kind)%len(kinds)],
			"metadata":   map[string]any{"name": "fuzzed", "namespace": ns},
			"spec":       fields,
		}}
		err := env.Client.Create(ctx, u, client.DryRunAll)
		if err == nil {
			return
		}
		if why := unnamed(err); why != "" {
			t.Fatalf("%s %s: %s", u.GetKind(), spec, why)
		}
	})
}

// unnamed says what is wrong with a refusal that does not name its field; "" when it does.
func unnamed(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return fmt.Sprintf("not an API status: %v", err)
	}
	s := status.Status()
	if s.Reason != metav1.StatusReasonInvalid {
		return fmt.Sprintf("refused with %s (%d), not Invalid: %s", s.Reason, s.Code, s.Message)
	}
	if s.Details == nil || len(s.Details.Causes) == 0 {
		return "refused with no cause: " + s.Message
	}
	for _, c := range s.Details.Causes {
		if c.Field == "" {
			return fmt.Sprintf("a cause names no field: %q (%s)", c.Message, s.Message)
		}
	}
	return ""
}

type seed struct {
	kind uint8
	spec []byte
}

// seeds are the samples of docs/samples, a plan and a restore, and some specs each kind refuses.
func seeds(tb testing.TB) []seed {
	tb.Helper()
	var out []seed
	for _, file := range []string{"instances.yaml", "bindings.yaml"} {
		b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "samples", file))
		if err != nil {
			tb.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			var o struct {
				Kind string         `json:"kind"`
				Spec map[string]any `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil || o.Spec == nil {
				continue
			}
			spec, _ := json.Marshal(o.Spec)
			for i, k := range kinds {
				if k == o.Kind {
					out = append(out, seed{uint8(i), spec})
				}
			}
		}
	}
	for _, s := range []struct {
		kind uint8
		spec string
	}{
		{0, `{"engine":"postgres","version":"9","replicas":-1}`},
		{0, `{"engine":"rabbitmq","parameters":{"management.tcp.port":"1"},"storage":{"size":"1Zi"}}`},
		{0, `{"engine":"mongodb","tls":{"required":true},"maintenanceWindow":{"days":["Xyz"],"startTime":"25:00"}}`},
		{0, `{"engine":"nosuch"}`},
		{1, `{"instanceRef":{"name":"db","namespace":"other"},"role":"superuser","database":"postgres"}`},
		{1, `{"instanceRef":{"name":""},"secretName":"../x"}`},
		{2, `{"instanceRef":{"name":"db"},"schedule":"61 * * * *","storeRef":{"name":"s"},"retention":{"keep":0}}`},
		{2, `{"instanceRef":{"name":"db"},"schedule":"@daily","storeRef":{"name":"s"},"retention":{"maxAge":"forever"}}`},
		{3, `{"backupRef":{"name":"b"},"target":{"newInstance":{"name":"x"},"inPlace":{"confirm":"y"}}}`},
		{3, `{"backupRef":{"name":"b"},"target":{"targetTime":"yesterday"}}`},
	} {
		out = append(out, seed{s.kind, []byte(s.spec)})
	}
	return out
}
