//go:build e2e

// Package e2e tests Datafleet installed with its Helm chart on a real cluster: real kubelet, real pods.
// `make e2e` brings the local cluster up, builds and imports the images and runs this suite; it also
// runs as part of `make test`. Run by hand against any cluster with:
//
//	E2E_KUBECONFIG=... HELM=... E2E_IMAGES=.../refs.env go test -tags e2e ./test/e2e/
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

const (
	releaseName      = "datafleet-e2e"
	releaseNamespace = "datafleet-e2e"
	// Generous: these bound a hung test, they do not measure speed.
	waitTimeout = 3 * time.Minute
)

// cluster is what every test uses: clients for the cluster under test and the images to install.
type cluster struct {
	cfg    *rest.Config
	c      client.Client
	cs     *kubernetes.Clientset
	helm   string
	images map[string]string
	root   string
}

var env *cluster

// restricted labels a namespace so that Pod Security admission enforces the restricted profile:
// every pod the tests and the chart create must pass it.
var restricted = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}

func TestMain(m *testing.M) {
	var err error
	env, err = newCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func newCluster() (*cluster, error) {
	const how = "run `make e2e`, which brings up the local cluster, builds the images and sets these"
	kubeconfig := os.Getenv("E2E_KUBECONFIG")
	helm := os.Getenv("HELM")
	imagesFile := os.Getenv("E2E_IMAGES")
	if kubeconfig == "" || helm == "" || imagesFile == "" {
		return nil, fmt.Errorf("E2E_KUBECONFIG, HELM and E2E_IMAGES must be set: %s", how)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("E2E_KUBECONFIG: %w (%s)", err, how)
	}
	cfg.QPS, cfg.Burst = 100, 200
	c, err := client.New(cfg, client.Options{Scheme: engine.NewScheme()})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("the cluster in %s does not answer: %w (%s)", kubeconfig, err, how)
	}
	images, err := readImages(imagesFile)
	if err != nil {
		return nil, fmt.Errorf("E2E_IMAGES: %w (%s)", err, how)
	}
	return &cluster{cfg: cfg, c: c, cs: cs, helm: helm, images: images, root: testenv.RepoRoot()}, nil
}

// readImages parses hack/images.sh's NAME=REF lines.
func readImages(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if name, ref, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			out[name] = ref
		}
	}
	for _, want := range []string{"operator", "testapp"} {
		if out[want] == "" {
			return nil, fmt.Errorf("%s lists no %s image", path, want)
		}
	}
	return out, nil
}

// image returns the repository and tag of a built image.
func (e *cluster) image(name string) (repo, tag string) {
	ref := e.images[name]
	i := strings.LastIndex(ref, ":")
	return ref[:i], ref[i+1:]
}

func (e *cluster) runHelm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(e.helm, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("E2E_KUBECONFIG"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// helmUpgrade upgrades the chart with the values it has and sets ("--set", "key=value", ...), and
// waits until the new manager is the only one running.
func helmUpgrade(t *testing.T, sets ...string) {
	t.Helper()
	helmUpgradeChart(t, filepath.Join(env.root, "charts", "datafleet"), sets...)
}

// helmUpgradeChart is helmUpgrade to the chart in dir.
func helmUpgradeChart(t *testing.T, dir string, sets ...string) {
	t.Helper()
	env.runHelm(t, append([]string{"upgrade", releaseName, dir, "--namespace", releaseNamespace,
		"--reuse-values", "--wait", "--timeout", "3m"}, sets...)...)
	testenv.Eventually(t, waitTimeout, func() error {
		var d appsv1.Deployment
		if err := env.c.Get(context.Background(), client.ObjectKey{Namespace: releaseNamespace, Name: releaseName}, &d); err != nil {
			return err
		}
		s := d.Status
		return expect(s.ObservedGeneration == d.Generation && s.UpdatedReplicas == 1 && s.AvailableReplicas == 1 && s.Replicas == 1,
			"the upgraded manager is the only one running", fmt.Sprintf("generation %d, status %+v", d.Generation, s))
	})
}

// operatorImage sets the chart's image to the one hack/images.sh built as name.
func operatorImage(name string) []string {
	repo, tag := env.image(name)
	return []string{"--set", "image.repository=" + repo, "--set-string", "image.tag=" + tag}
}

// expect is the result of a testenv.Eventually condition: nil when ok, else what is awaited and why not yet.
func expect(ok bool, what, why string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s; last seen: %s", what, why)
}

// waitGone waits until obj no longer exists.
func waitGone(t *testing.T, what string, obj client.Object) {
	t.Helper()
	testenv.Eventually(t, waitTimeout, func() error {
		err := env.c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		return expect(apierrors.IsNotFound(err), what, fmt.Sprint(err))
	})
}

// testNamespace creates a namespace for one test and deletes it afterwards. On failure it first
// prints what a developer needs: the operator's logs, the events and the objects of that namespace.
func testNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: restricted}}
	if err := env.c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			env.dump(t, ns.Name)
		}
		_ = env.c.Delete(context.Background(), ns)
	})
	return ns.Name
}

// eventsAbout lists the events of namespace ns about the object named name with reason.
func eventsAbout(ctx context.Context, ns, name, reason string) ([]corev1.Event, error) {
	events := &corev1.EventList{}
	if err := env.c.List(ctx, events, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var about []corev1.Event
	for _, e := range events.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			about = append(about, e)
		}
	}
	return about, nil
}

func (e *cluster) dump(t *testing.T, namespaces ...string) {
	ctx := context.Background()
	var b strings.Builder
	for _, ns := range append([]string{releaseNamespace}, namespaces...) {
		fmt.Fprintf(&b, "\n===== namespace %s =====\n", ns)
		var pods corev1.PodList
		if err := e.c.List(ctx, &pods, client.InNamespace(ns)); err == nil {
			for _, p := range pods.Items {
				fmt.Fprintf(&b, "--- pod %s: %s\n", p.Name, p.Status.Phase)
				for _, c := range p.Spec.Containers {
					logs, err := e.cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: ptr(int64(200))}).DoRaw(ctx)
					if err != nil {
						fmt.Fprintf(&b, "(logs of %s: %v)\n", c.Name, err)
						continue
					}
					fmt.Fprintf(&b, "--- logs of %s/%s:\n%s\n", p.Name, c.Name, logs)
				}
			}
		}
		var events corev1.EventList
		if err := e.c.List(ctx, &events, client.InNamespace(ns)); err == nil {
			b.WriteString("--- events:\n")
			for _, ev := range events.Items {
				fmt.Fprintf(&b, "%s %s %s/%s: %s %s\n", ev.LastTimestamp.Format(time.RFC3339), ev.Type,
					ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.Message)
			}
		}
		for _, list := range dumpKinds() {
			if err := e.c.List(ctx, list, client.InNamespace(ns)); err == nil {
				y, _ := yaml.Marshal(list)
				fmt.Fprintf(&b, "--- %T:\n%s\n", list, y)
			}
		}
	}
	t.Log(b.String())
}

func dumpKinds() []client.ObjectList {
	return []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &corev1.PersistentVolumeClaimList{}, &v1alpha1.ServiceInstanceList{},
		&v1alpha1.BackupStoreList{}, &v1alpha1.BackupList{}, &v1alpha1.RestoreList{}}
}

func ptr[T any](v T) *T { return &v }

// createInstance creates the instance and deletes it when the test ends.
func createInstance(t *testing.T, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	if err := env.c.Create(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), inst) })
}
