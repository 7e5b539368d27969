//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/test/testenv"
)

// What the cluster itself must provide to the engines: Service DNS and dynamically provisioned,
// expandable volumes.

func TestPodReachesServiceByDNSName(t *testing.T) {
	ns := testNamespace(t, "dns")
	ctx := context.Background()
	labels := map[string]string{"app": "echo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: testappPod("serve", ":8080")},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: labels,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	for _, o := range []client.Object{dep, svc} {
		if err := env.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
			return expect(false, "the echo Deployment is available", err.Error())
		}
		return expect(dep.Status.AvailableReplicas == 1, "the echo Deployment is available", fmt.Sprintf("%+v", dep.Status))
	})

	url := fmt.Sprintf("http://echo.%s.svc.cluster.local/", ns)
	logs := runPod(t, ns, "probe", corev1.PodSucceeded, "probe", "-for", "60s", url)
	if !strings.Contains(logs, "200 ok echo-") {
		t.Errorf("the probe pod did not get the echo server's answer through %s:\n%s", url, logs)
	}
	// Names outside the cluster do not resolve: cluster DNS has no upstream, nothing leaves the machine.
	logs = runPod(t, ns, "outside", corev1.PodFailed, "probe", "http://example.com/")
	if !strings.Contains(logs, "resolve example.com") {
		t.Errorf("example.com should not resolve inside the cluster:\n%s", logs)
	}
}

func TestDefaultStorageClassProvisionsAndExpands(t *testing.T) {
	ns := testNamespace(t, "storage")
	ctx := context.Background()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{ // no storageClassName: the default class applies
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if err := env.c.Create(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	logs := runPodWithVolume(t, ns, "writer", pvc.Name, "write", "/data/hello", "kept")
	if !strings.Contains(logs, "wrote /data/hello: kept") {
		t.Fatalf("the non-root pod could not write to its volume:\n%s", logs)
	}
	if err := env.c.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
		t.Fatal(err)
	}
	var sc storagev1.StorageClass
	if err := env.c.Get(ctx, client.ObjectKey{Name: *pvc.Spec.StorageClassName}, &sc); err != nil {
		t.Fatal(err)
	}
	if sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" || sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		t.Errorf("storage class %s should be the default and allow expansion", sc.Name)
	}
	pvName := pvc.Spec.VolumeName

	pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse("2Gi")
	if err := env.c.Update(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return expect(false, "the claim is expanded to 2Gi", err.Error())
		}
		got := pvc.Status.Capacity[corev1.ResourceStorage]
		return expect(got.Cmp(resource.MustParse("2Gi")) == 0, "the claim is expanded to 2Gi", "capacity "+got.String())
	})
	// A second pod on the same claim sees the first one's file.
	logs = runPodWithVolume(t, ns, "reader", pvc.Name, "write", "/data/second", "also")
	if !strings.Contains(logs, "wrote /data/second: also") {
		t.Fatalf("second pod:\n%s", logs)
	}

	if err := env.c.Delete(ctx, pvc); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the released volume is deleted (reclaimPolicy Delete)", &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName}})
}

// A node's bridge is its pods' gateway. Were its address the lowest of its ports' (Linux's default
// for a bridge whose address nobody set), it would change whenever a pod with a lower one came or
// went, and the pods would send their replies to the machine to the old address until their ARP
// entry expired: a Service reached from the host went silent for seconds (a MongoDB login timed
// out so in CI). A port with the lowest possible address joins and leaves; the bridge's stays.
func TestTheNodeBridgeKeepsItsAddressWhilePortsComeAndGo(t *testing.T) {
	const bridge, port = "datafleet0", "dfe2e-lowport"
	before := bridgeAddress(t, bridge)
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("link", "add", port, "address", "00:00:00:00:00:01", "type", "veth", "peer", "name", port+"p")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", port).Run() })
	ip("link", "set", port, "master", bridge)
	if got := bridgeAddress(t, bridge); got != before {
		t.Errorf("%s's address changed from %s to %s when a port with a lower one joined", bridge, before, got)
	}
	ip("link", "del", port)
	if got := bridgeAddress(t, bridge); got != before {
		t.Errorf("%s's address changed from %s to %s when that port left", bridge, before, got)
	}
}

func bridgeAddress(t *testing.T, bridge string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + bridge + "/address")
	if err != nil {
		t.Fatalf("the local cluster's bridge: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// The engine images hold their engine and run as its non-root user: the kubelet refuses to start a
// runAsNonRoot pod whose image user is root or not numeric.
func TestEngineImagesRunAsNonRoot(t *testing.T) {
	ns := testNamespace(t, "images")
	for _, c := range []struct{ image, want string }{
		{"postgres-15", "(PostgreSQL) 15."},
		{"postgres-17", "(PostgreSQL) 17."},
		{"rabbitmq-3.10", "3.10."},
		{"rabbitmq-4.0", "4.0."},
	} {
		t.Run(c.image, func(t *testing.T) {
			ref := env.images[c.image]
			if ref == "" {
				t.Fatalf("no %s image in E2E_IMAGES: run `make images`", c.image)
			}
			cmd := []string{"postgres", "--version"}
			if strings.HasPrefix(c.image, "rabbitmq") {
				cmd = []string{"rabbitmqctl", "version"}
			}
			spec := testappPod()
			spec.Containers[0].Image, spec.Containers[0].Args, spec.Containers[0].Command = ref, nil, cmd
			// rabbitmqctl writes an Erlang cookie into its home directory.
			spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = ptr(false)
			logs := runPodSpec(t, ns, strings.ReplaceAll(c.image, ".", "-"), corev1.PodSucceeded, spec)
			if !strings.Contains(logs, c.want) {
				t.Errorf("%s printed %q, want %q", cmd, logs, c.want)
			}
		})
	}
}

// testappPod is a pod running the test application under the restricted Pod Security profile.
func testappPod(args ...string) corev1.PodSpec {
	repo, tag := env.image("testapp")
	return corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{
			Name: "testapp", Image: repo + ":" + tag, ImagePullPolicy: corev1.PullNever, Args: args,
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		}},
	}
}

func runPodWithVolume(t *testing.T, ns, name, claim string, args ...string) string {
	spec := testappPod(args...)
	spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
	spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return runPodSpec(t, ns, name, corev1.PodSucceeded, spec)
}

// runPod runs the test application once and returns its output after it ends in the wanted phase.
func runPod(t *testing.T, ns, name string, want corev1.PodPhase, args ...string) string {
	return runPodSpec(t, ns, name, want, testappPod(args...))
}

func runPodSpec(t *testing.T, ns, name string, want corev1.PodPhase, spec corev1.PodSpec) string {
	t.Helper()
	ctx := context.Background()
	spec.RestartPolicy = corev1.RestartPolicyNever
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	if err := env.c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		ctx := context.Background()
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return expect(false, "pod "+name+" ends", err.Error())
		}
		return expect(pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed, "pod "+name+" ends", string(pod.Status.Phase))
	})
	logs, err := env.cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	if pod.Status.Phase != want {
		st, _ := yaml.Marshal(pod.Status)
		t.Fatalf("pod %s ended %s, want %s; output:\n%s\nstatus:\n%s", name, pod.Status.Phase, want, logs, st)
	}
	if err := env.c.Delete(ctx, pod); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "pod "+name+" is gone", pod)
	return string(logs)
}
