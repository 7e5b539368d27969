//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// testOperatorUpgrade: operator upgrades restart no database process and upgrade every agent in
// place, across one release in both directions. An instance made by this build is taken back to
// the previous release (hack/images.sh builds its operator from the commit in
// hack/previous-release; its CRDs come from the same commit): the older operator drives the newer
// agents and replaces them with its own. Instances of every engine are made by the previous
// release; then its CRDs and its operator are upgraded to this build's. Every agent and server
// process keeps its PID, start time and name throughout, every agent reports the version of the
// operator that runs (the pods' annotations, written from the agents' answers), the primary
// stays, the instances' specs are as they were written, nothing is pending, and the pods the
// previous release made serve this release's metrics endpoint.
func testOperatorUpgrade(t *testing.T) {
	ns := testNamespace(t, "upgrade")
	// A primary and a replica: the primary's agent hands its lease over to each new agent.
	ledger := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15", Replicas: ptr[int32](2), DeletionPolicy: v1alpha1.DeletionPolicyDelete}}
	createInstance(t, ledger)
	waitInstanceReady(t, ledger)
	before, primary := map[string]string{}, map[string]string{}
	record := func(inst *v1alpha1.ServiceInstance) {
		primary[inst.Name] = inst.Status.CurrentPrimary
		for _, pod := range instancePods(inst) {
			before[pod] = serverProcesses(t, getPod(t, ns, pod))
			t.Logf("UPGRADE: %s runs %s", pod, before[pod])
		}
	}
	record(ledger)

	// A rollback, as `helm rollback` makes it: the previous release's chart (its manager refuses
	// flags it does not know) with its image.
	applyCRDs(t, testenv.PreviousReleaseFiles(t, "charts/datafleet/crds"))
	helmUpgradeChart(t, previousChart(t), operatorImage("operator-previous")...)
	previous := testenv.PreviousRelease(t)[:12]
	checkAgents(t, ledger, previous, before, primary)

	insts := []*v1alpha1.ServiceInstance{
		{ObjectMeta: metav1.ObjectMeta{Name: "journal", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "15"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "queue", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", Version: "3.10"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: ns}, Spec: v1alpha1.ServiceInstanceSpec{Engine: "mongodb", Version: "ferretdb-1.24"}},
	}
	for _, inst := range insts {
		inst.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
		createInstance(t, inst)
	}
	for _, inst := range insts {
		waitInstanceReady(t, inst)
		record(inst)
	}
	insts = append(insts, ledger)
	specs := map[string]v1alpha1.ServiceInstanceSpec{}
	for _, inst := range insts {
		specs[inst.Name] = *inst.Spec.DeepCopy()
	}

	// helm upgrade alone brings this release's CRDs (the chart's pre-upgrade hook): until then the
	// previous release's are served.
	if behind := crdsBehind(t); len(behind) == 0 {
		t.Fatal("the previous release's CRDs are this release's: the upgrade would prove nothing about them")
	}
	helmUpgrade(t, operatorImage("operator")...)
	if behind := crdsBehind(t); len(behind) > 0 {
		t.Fatalf("after helm upgrade the API server still serves the previous release's schema of %v", behind)
	}
	hook := releaseName + "-crd-upgrade"
	waitGone(t, "the CRD upgrade hook's Job", &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: hook}})
	waitGone(t, "the CRD upgrade hook's ClusterRole", &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: hook}})
	t.Logf("UPGRADE: helm upgrade's hook applied this release's CRDs and left nothing behind")
	version := gitVersion(t)
	for _, inst := range insts {
		checkAgents(t, inst, version, before, primary)
		// The agent replaced in place brings this release's metrics endpoint to the running pods
		// the previous release made, whose template declares none.
		for _, pod := range instancePods(inst) {
			checkAgentRefusesScrapes(t, ns, pod)
		}
		if !equality.Semantic.DeepEqual(inst.Spec, specs[inst.Name]) {
			t.Errorf("%s: the spec changed with the upgrade:\nbefore %+v\nafter  %+v", inst.Name, specs[inst.Name], inst.Spec)
		}
	}
}

// checkAgents waits until every agent of inst reports version, and checks that its pods'
// processes are those of before, that the primary is, and that the instance is Ready with
// nothing pending.
func checkAgents(t *testing.T, inst *v1alpha1.ServiceInstance, version string, before, primary map[string]string) {
	t.Helper()
	for _, name := range instancePods(inst) {
		var pod *corev1.Pod
		testenv.Eventually(t, waitTimeout, func() error {
			pod = getPod(t, inst.Namespace, name)
			v := pod.Annotations["datafleet.dev/agent-version"]
			return expect(v == version, "the agent reports version "+version, fmt.Sprintf("%s: annotations %v", name, pod.Annotations))
		})
		if now := serverProcesses(t, pod); now != before[name] {
			t.Errorf("%s restarted with the operator's change: %s before, %s after", name, before[name], now)
		}
		t.Logf("UPGRADE: %s still runs %s, its agent now %s (%s)", name, before[name],
			pod.Annotations["datafleet.dev/agent-version"], pod.Annotations["datafleet.dev/agent-digest"])
	}
	waitInstance(t, inst, waitTimeout, "Ready with nothing pending, on the same primary", func() (bool, string) {
		p := inst.Status.PendingRestarts
		return len(p) == 0 && inst.Status.Phase == v1alpha1.PhaseReady && inst.Status.CurrentPrimary == primary[inst.Name],
			fmt.Sprintf("phase %s, primary %q (was %q), pending %+v", inst.Status.Phase, inst.Status.CurrentPrimary, primary[inst.Name], p)
	})
}

// previousChart writes the previous release's chart, from its commit, into a temporary directory.
func previousChart(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range testenv.PreviousReleaseFiles(t, "charts/datafleet") {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "charts", "datafleet")
}

// gitVersion is the version hack/images.sh gave this checkout's build.
func gitVersion(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(string(testenv.Git(t, "describe", "--always", "--dirty", "--abbrev=12")))
}

// instancePods names the instance's pods.
func instancePods(inst *v1alpha1.ServiceInstance) []string {
	var pods []string
	n := int32(1)
	if inst.Spec.Replicas != nil {
		n = *inst.Spec.Replicas
	}
	for i := range n {
		pods = append(pods, fmt.Sprintf("%s-%d", inst.Name, i))
	}
	return pods
}

// serverProcesses describes the pod's agent (PID 1 of its container) and the server it started,
// each by command, PID and start time (clock ticks after boot, /proc/PID/stat): equal before and
// after means no process restarted.
func serverProcesses(t *testing.T, pod *corev1.Pod) string {
	t.Helper()
	procs := map[string]testenv.Proc{}
	for _, pid := range podPIDs(t, pod) {
		p, err := testenv.ReadProc(pid)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // gone since it was listed
		} else if err != nil {
			t.Fatal(err)
		}
		procs[strconv.Itoa(pid)] = p
	}
	var agent string
	for pid, p := range procs {
		if p.Comm == "manager" && procs[p.PPID].Comm != "manager" {
			agent = pid
		}
	}
	if agent == "" {
		t.Fatalf("no agent process in pod %s: %+v", pod.Name, procs)
	}
	// The server is the agent's first child: processes that daemonized (epmd) or that the server
	// spawns and ends (Erlang's inet_gethost) are reparented to the agent as PID 1 later on.
	server, first := "", int64(0)
	for pid, p := range procs {
		start, _ := strconv.ParseInt(p.Start, 10, 64)
		if p.PPID == agent && (server == "" || start < first) {
			server, first = pid, start
		}
	}
	if server == "" {
		t.Fatalf("the agent of pod %s runs no server: %+v", pod.Name, procs)
	}
	return fmt.Sprintf("agent pid %s since %s, %s pid %s since %s", agent, procs[agent].Start, procs[server].Comm, server, procs[server].Start)
}

// crdsBehind names the chart's CRDs whose served versions (schemas, columns, subresources)
// differ from this checkout's files.
func crdsBehind(t *testing.T) []string {
	t.Helper()
	var behind []string
	for _, b := range chartCRDs(t) {
		want := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &want.Object); err != nil {
			t.Fatal(err)
		}
		served := &unstructured.Unstructured{}
		served.SetGroupVersionKind(apiextensionsCRD)
		if err := env.c.Get(context.Background(), client.ObjectKey{Name: want.GetName()}, served); err != nil {
			t.Fatal(err)
		}
		// Compared as JSON: the file's numbers decode as floats, the server's as integers.
		w, _ := json.Marshal(want.Object["spec"].(map[string]any)["versions"])
		s, _ := json.Marshal(served.Object["spec"].(map[string]any)["versions"])
		if !bytes.Equal(w, s) {
			behind = append(behind, want.GetName())
		}
	}
	return behind
}
