package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// `kubectl datafleet report INSTANCE` writes a support bundle: one gzipped tarball with the
// instance, every object the operator made for it and every Datafleet object that refers to it
// (bindings, backups, restores, plans), the events of all of them, the logs of its pods'
// containers (and of their previous run after a restart) and the operator's log lines that name
// it. What cannot be read (a forbidden kind, a pod without a kubelet to answer) is listed in the
// bundle's README instead of failing the report, so that a support engineer sees what is missing.
//
// Nothing secret leaves: a Secret is written with its keys and the size of each value, never the
// value; managed fields and the last-applied annotation (which can hold a Secret's data) are
// dropped; and every secret value (a password, a URI, a key, a token: secretKey) of every Secret
// of the instance's namespace the user can read, and anything that looks like a password or a
// URI's credentials, is replaced by REDACTED in every file, logs included. Every read is bounded (logLimit per container).

// logLimit bounds what is read of one container's log (its end).
const logLimit = 4 << 20

// LogReader reads a container's log: the real one streams it from the kubelet through the API
// server.
type LogReader func(ctx context.Context, namespace, pod string, opts *corev1.PodLogOptions) ([]byte, error)

// ReportOptions are where the operator runs (its pods' logs are searched for the instance).
type ReportOptions struct {
	OperatorNamespace string
	Now               time.Time
}

// report is a bundle being written: its files by name, and what could not be read.
type report struct {
	files   map[string][]byte
	missing []string
	secrets [][]byte // values to redact
}

func (r *report) miss(what string, err error) {
	r.missing = append(r.missing, fmt.Sprintf("%s: %v", what, err))
}

// Report writes the bundle of instance ns/name to w and returns the names of its files.
func Report(ctx context.Context, c client.Client, logs LogReader, ns, name string, o ReportOptions, w io.Writer) ([]string, error) {
	var inst v1alpha1.ServiceInstance
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &inst); err != nil {
		return nil, fmt.Errorf("report: instance %s/%s: %w", ns, name, err)
	}
	r := &report{files: map[string][]byte{}}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.InNamespace(ns)); err != nil {
		r.miss("the namespace's Secrets (their values are redacted by pattern only)", err)
	}
	for _, s := range secrets.Items {
		for k, v := range s.Data {
			if secretKey.MatchString(k) && len(v) >= 6 {
				r.secrets = append(r.secrets, v)
			}
		}
	}
	slices.SortFunc(r.secrets, func(a, b []byte) int { return len(b) - len(a) })
	r.object(c, "instance", &inst)
	uids := map[types.UID]bool{inst.UID: true}
	children := client.MatchingLabels{names.InstanceLabel: name, names.ManagedByLabel: names.ManagedBy}
	var pods corev1.PodList
	for _, l := range []struct {
		kind string
		list client.ObjectList
	}{
		{"statefulsets", &appsv1.StatefulSetList{}},
		{"pods", &pods},
		{"persistentvolumeclaims", &corev1.PersistentVolumeClaimList{}},
		{"services", &corev1.ServiceList{}},
		{"poddisruptionbudgets", &policyv1.PodDisruptionBudgetList{}},
		{"networkpolicies", &networkingv1.NetworkPolicyList{}},
		{"configmaps", &corev1.ConfigMapList{}},
		{"secrets", &corev1.SecretList{}},
		{"jobs", &batchv1.JobList{}},
	} {
		if err := c.List(ctx, l.list, client.InNamespace(ns), children); err != nil {
			r.miss(l.kind, err)
			continue
		}
		r.list(c, l.kind, l.list, uids)
	}
	r.referrers(ctx, c, &inst, uids)
	r.events(ctx, c, ns, uids)
	r.podLogs(ctx, logs, pods.Items)
	r.operatorLogs(ctx, c, logs, o.OperatorNamespace, ns, name)
	return r.write(w, &inst, o.Now)
}

// referrers adds the Datafleet objects that name the instance: its bindings (in any namespace the
// user can list), backups, restores into it or from its backups, and plans.
func (r *report) referrers(ctx context.Context, c client.Client, inst *v1alpha1.ServiceInstance, uids map[types.UID]bool) {
	var bindings v1alpha1.ServiceBindingList
	if err := c.List(ctx, &bindings); err != nil {
		r.miss("servicebindings of every namespace (listing the instance's namespace instead)", err)
		if err := c.List(ctx, &bindings, client.InNamespace(inst.Namespace)); err != nil {
			r.miss("servicebindings", err)
		}
	}
	var mine v1alpha1.ServiceBindingList
	for _, b := range bindings.Items {
		ref := b.Spec.InstanceRef
		if ref.Name == inst.Name && (ref.Namespace == inst.Namespace || ref.Namespace == "" && b.Namespace == inst.Namespace) {
			mine.Items = append(mine.Items, b)
		}
	}
	r.list(c, "servicebindings", &mine, uids)
	var backups, mineBackups v1alpha1.BackupList
	var restores, mineRestores v1alpha1.RestoreList
	var plans, minePlans v1alpha1.BackupPlanList
	if err := c.List(ctx, &backups, client.InNamespace(inst.Namespace)); err != nil {
		r.miss("backups", err)
	}
	ofInstance := map[string]bool{}
	for _, b := range backups.Items {
		if b.Spec.InstanceRef.Name == inst.Name {
			mineBackups.Items = append(mineBackups.Items, b)
			ofInstance[b.Name] = true
		}
	}
	r.list(c, "backups", &mineBackups, uids)
	if err := c.List(ctx, &restores, client.InNamespace(inst.Namespace)); err != nil {
		r.miss("restores", err)
	}
	for _, rs := range restores.Items {
		into := rs.Spec.Target.NewInstance != nil && rs.Spec.Target.NewInstance.Name == inst.Name
		if into || ofInstance[rs.Spec.BackupRef.Name] {
			mineRestores.Items = append(mineRestores.Items, rs)
		}
	}
	r.list(c, "restores", &mineRestores, uids)
	if err := c.List(ctx, &plans, client.InNamespace(inst.Namespace)); err != nil {
		r.miss("backupplans", err)
	}
	for _, p := range plans.Items {
		if p.Spec.InstanceRef.Name == inst.Name {
			minePlans.Items = append(minePlans.Items, p)
		}
	}
	r.list(c, "backupplans", &minePlans, uids)
}

// events adds the events of the namespace about any object of the report, oldest first.
func (r *report) events(ctx context.Context, c client.Client, ns string, uids map[types.UID]bool) {
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		r.miss("events", err)
		return
	}
	var lines []string
	sort.SliceStable(events.Items, func(i, j int) bool { return eventTime(&events.Items[i]).Before(eventTime(&events.Items[j])) })
	for _, e := range events.Items {
		if !uids[e.InvolvedObject.UID] {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s  %-7s %-24s %s/%s  %s (x%d)", eventTime(&e).UTC().Format(time.RFC3339), e.Type, e.Reason,
			e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message, max(e.Count, 1)))
	}
	r.files["events.txt"] = []byte(strings.Join(lines, "\n") + "\n")
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// podLogs adds each container's log, and its previous run's after a restart.
func (r *report) podLogs(ctx context.Context, logs LogReader, pods []corev1.Pod) {
	for _, p := range pods {
		if p.Spec.NodeName == "" {
			r.miss("logs of "+p.Name, fmt.Errorf("the pod is not scheduled on a node (phase %q)", p.Status.Phase))
			continue
		}
		var statuses []corev1.ContainerStatus
		statuses = append(statuses, p.Status.InitContainerStatuses...)
		statuses = append(statuses, p.Status.ContainerStatuses...)
		restarts := map[string]bool{}
		for _, s := range statuses {
			restarts[s.Name] = s.RestartCount > 0
		}
		var containers []string
		for _, ct := range slices.Concat(p.Spec.InitContainers, p.Spec.Containers) {
			containers = append(containers, ct.Name)
		}
		for _, ct := range containers {
			r.log(ctx, logs, p.Namespace, p.Name, ct, false, "logs/"+p.Name+"/"+ct+".log", nil)
			if restarts[ct] {
				r.log(ctx, logs, p.Namespace, p.Name, ct, true, "logs/"+p.Name+"/"+ct+".previous.log", nil)
			}
		}
	}
}

// operatorLogs adds the lines of the operator's logs that name the instance (its namespace and
// its name on one line: a log line of a reconcile names both).
func (r *report) operatorLogs(ctx context.Context, c client.Client, logs LogReader, operatorNS, ns, name string) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(operatorNS), client.MatchingLabels{names.NameLabel: "datafleet"}); err != nil {
		r.miss("the operator's pods in "+operatorNS, err)
		return
	}
	if len(pods.Items) == 0 {
		r.miss("the operator's pods", fmt.Errorf("none in namespace %s with label %s=datafleet (--operator-namespace)", operatorNS, names.NameLabel))
	}
	keep := func(line string) bool { return strings.Contains(line, ns) && strings.Contains(line, name) }
	for _, p := range pods.Items {
		for _, ct := range p.Spec.Containers {
			r.log(ctx, logs, p.Namespace, p.Name, ct.Name, false, "operator/"+p.Name+"/"+ct.Name+".log", keep)
		}
	}
}

func (r *report) log(ctx context.Context, logs LogReader, ns, pod, container string, previous bool, file string, keep func(string) bool) {
	b, err := logs(ctx, ns, pod, &corev1.PodLogOptions{Container: container, Previous: previous, Timestamps: true, LimitBytes: ptr.To[int64](logLimit)})
	if err != nil {
		r.miss("log of "+pod+"/"+container+map[bool]string{true: " (previous run)"}[previous], err)
		return
	}
	if keep != nil {
		var kept []string
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if keep(line) {
				kept = append(kept, line)
			}
		}
		b = []byte(strings.Join(kept, ""))
	}
	r.files[file] = b
}

// list adds each object of list under kind/NAME.yaml and records its UID.
func (r *report) list(c client.Client, kind string, list client.ObjectList, uids map[types.UID]bool) {
	items, err := metaItems(list)
	if err != nil {
		r.miss(kind, err)
		return
	}
	for _, o := range items {
		uids[o.GetUID()] = true
		r.object(c, kind+"/"+o.GetName(), o)
	}
}

func metaItems(list client.ObjectList) ([]client.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		co, ok := o.(client.Object)
		if !ok {
			return nil, fmt.Errorf("%T is not an object", o)
		}
		out = append(out, co)
	}
	return out, nil
}

// object adds o as YAML under file.yaml, with its kind, without managed fields or the
// last-applied annotation, and a Secret with its keys and each value's size only.
func (r *report) object(c client.Client, file string, o client.Object) {
	o = o.DeepCopyObject().(client.Object)
	if gvk, err := apiutil.GVKForObject(o, c.Scheme()); err == nil {
		o.GetObjectKind().SetGroupVersionKind(gvk)
	}
	o.SetManagedFields(nil)
	if a := o.GetAnnotations(); a != nil {
		delete(a, corev1.LastAppliedConfigAnnotation)
		o.SetAnnotations(a)
	}
	if s, ok := o.(*corev1.Secret); ok {
		sizes := map[string]string{}
		for k, v := range s.Data {
			sizes[k] = fmt.Sprintf("REDACTED (%d bytes)", len(v))
		}
		for k, v := range s.StringData {
			sizes[k] = fmt.Sprintf("REDACTED (%d bytes)", len(v))
		}
		s.Data, s.StringData = nil, sizes
	}
	b, err := yaml.Marshal(o)
	if err != nil {
		r.miss(file, err)
		return
	}
	r.files[file+".yaml"] = b
}

// secretKey matches the keys of a Secret whose values are secret (a binding's password and uri, a
// private key, a store's keys, a token); the others (a host, a port, a user's name, a
// certificate) would redact half the bundle for nothing.
var secretKey = regexp.MustCompile(`(?i)(password|passwd|token|secret|uri|url|key|cookie|credential)`)

// Patterns of credentials in free text: key=value and "key": "value" pairs whose key says
// password, secret or token, and the password of a URI.
var (
	credentialPair = regexp.MustCompile(`(?i)((?:password|passwd|pwd|secret|token)["']?\s*[:=]\s*["']?)[^"'\s,&}]+`)
	uriPassword    = regexp.MustCompile(`(://[^:/@\s]+:)[^@\s/]+@`)
)

// redact removes every Secret value and anything that looks like a credential from b. Longest
// values first: a shorter one replaced inside a longer one would leave the rest of it.
func (r *report) redact(b []byte) []byte {
	for _, v := range r.secrets {
		b = bytes.ReplaceAll(b, v, []byte("REDACTED"))
	}
	b = credentialPair.ReplaceAll(b, []byte("${1}REDACTED"))
	return uriPassword.ReplaceAll(b, []byte("${1}REDACTED@"))
}

// write writes the bundle: a README saying what it holds and what could not be read, then every
// file, redacted, under one directory named after the instance and the time.
func (r *report) write(w io.Writer, inst *v1alpha1.ServiceInstance, now time.Time) ([]string, error) {
	top := fmt.Sprintf("datafleet-report-%s-%s-%s", inst.Namespace, inst.Name, now.UTC().Format("20060102T150405Z"))
	var readme strings.Builder
	fmt.Fprintf(&readme, "Datafleet support bundle of ServiceInstance %s/%s (engine %s, version %s), %s.\n\n", inst.Namespace, inst.Name,
		inst.Spec.Engine, inst.Spec.Version, now.UTC().Format(time.RFC3339))
	readme.WriteString("Secrets hold their keys and sizes only; every secret value (passwords, URIs, keys, tokens) of the\n" +
		"namespace's Secrets that could be read, and anything that looks like a password or a URI's\n" +
		"credentials, is REDACTED in every file.\n")
	if len(r.missing) > 0 {
		readme.WriteString("\nNot in this bundle (could not be read):\n")
		for _, m := range r.missing {
			fmt.Fprintf(&readme, "- %s\n", m)
		}
	}
	r.files["README.txt"] = []byte(readme.String())
	var fileNames []string
	for n := range r.files {
		fileNames = append(fileNames, n)
	}
	sort.Strings(fileNames)
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, n := range fileNames {
		b := r.redact(r.files[n])
		if err := tw.WriteHeader(&tar.Header{Name: top + "/" + n, Mode: 0o600, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return fileNames, gz.Close()
}

// runReport writes the bundle of ns/name to file (a name of its own by default) and says where.
func runReport(ctx context.Context, out io.Writer, cfg *rest.Config, c client.Client, ns, name, file, operatorNS string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	now := time.Now()
	if file == "" {
		file = fmt.Sprintf("datafleet-report-%s-%s-%s.tar.gz", ns, name, now.UTC().Format("20060102T150405Z"))
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	files, err := Report(ctx, c, podLogReader(cs), ns, name, ReportOptions{OperatorNamespace: operatorNS, Now: now}, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return err
	}
	fmt.Fprintf(out, "report of %s/%s written to %s (%d files; README.txt lists what could not be read)\n", ns, name, file, len(files))
	return nil
}

// podLogReader reads logs through the API server, each read bounded in size and time.
func podLogReader(cs kubernetes.Interface) LogReader {
	return func(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		rc, err := cs.CoreV1().Pods(ns).GetLogs(pod, opts).Stream(ctx)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(io.LimitReader(rc, logLimit))
	}
}
