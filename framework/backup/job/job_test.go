package job_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/archive"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest"
	"github.com/datafleet-dev/datafleet/framework/workload"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

func TestBuildGolden(t *testing.T) {
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Version: "17",
			// The Job goes where the instance's pods may (node selector, tolerations) with their
			// priority; their affinity and spread are about the members' places, and stay theirs.
			Scheduling: &v1alpha1.SchedulingSpec{NodeSelector: map[string]string{"example.com/pool": "data"},
				Tolerations:       []corev1.Toleration{{Key: "example.com/data", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				Affinity:          &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}},
				PriorityClassName: "data"}}}
	bs := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: "shop"}, Spec: v1alpha1.BackupStoreSpec{
		URL: "s3://backups?endpoint=http://minio:9000&use_path_style=true", Prefix: "team-a",
		CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "store-credentials"},
		Encryption:           &v1alpha1.BackupEncryption{KeySecretRef: v1alpha1.SecretKeyReference{Name: "backup-key", Key: "key"}},
	}}
	j := job.Build(job.Input{Name: "nightly-backup", Namespace: "shop", Mode: job.ModeDump, Component: job.ComponentBackup, Owner: "nightly",
		Image: "datafleet/operator:dev", Engine: "postgres", Instance: inst, Version: "17", Store: bs, Dir: "shop/orders/nightly-0123abcd",
		Backup: "nightly", EngineEnv: []corev1.EnvVar{workload.SecretEnv("DATAFLEET_AGENT_TLS_KEY", "orders-agent-tls", "tls.key")},
		Deadline: 6 * time.Hour})
	enginetest.GoldenObjects(t, []client.Object{j}, "testdata/dump-job.golden.yaml")
	// The tenant's credentials Secret reaches the Job as the keys a store reads, never whole: an
	// HTTPS_PROXY in it must not become the Job's.
	c := j.Spec.Template.Spec.Containers[0]
	if len(c.EnvFrom) != 0 {
		t.Fatalf("the Job takes a Secret whole: %+v", c.EnvFrom)
	}
	var fromCreds []string
	for _, e := range c.Env {
		if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && r.SecretKeyRef.Name == "store-credentials" {
			if e.Name != r.SecretKeyRef.Key || r.SecretKeyRef.Optional == nil || !*r.SecretKeyRef.Optional {
				t.Errorf("%s from the credentials: %+v", e.Name, r.SecretKeyRef)
			}
			fromCreds = append(fromCreds, e.Name)
		}
	}
	if !slices.Equal(fromCreds, store.CredentialKeys) {
		t.Fatalf("the Job takes %v from the credentials Secret, want %v", fromCreds, store.CredentialKeys)
	}
}

// fileEngine is an engine whose data is one file: enough to drive the Job's checks against a real
// store and observe the data they protect. The real engines' dumps and loads are tested against
// real servers in their packages and on the local cluster.
type fileEngine struct{ path string }

func (f fileEngine) BackupEnv(*v1alpha1.ServiceInstance) []corev1.EnvVar { return nil }

func (f fileEngine) Reach(context.Context, engine.BackupTarget) error { return nil }

func (f fileEngine) Dump(_ context.Context, _ engine.BackupTarget, w io.Writer) error {
	b, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	a := archive.NewWriter(w)
	pw, _ := a.Create("data")
	if _, err := pw.Write(b); err != nil {
		return err
	}
	return a.Close()
}

func (f fileEngine) Load(_ context.Context, _ engine.BackupTarget, r io.Reader) (string, error) {
	var data []byte
	err := archive.NewReader(r).Each(func(_ string, part io.Reader) error {
		var err error
		data, err = io.ReadAll(part)
		return err
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d bytes", len(data)), os.WriteFile(f.path, data, 0o600)
}

// stuckEngine's dump never ends by itself, as a pg_dump waiting on a lock would not.
type stuckEngine struct{ fileEngine }

func (stuckEngine) Dump(ctx context.Context, _ engine.BackupTarget, w io.Writer) error {
	<-ctx.Done()
	return ctx.Err()
}

// A Job with a deadline stops itself before it and says why (DeadlineExceeded), and leaves
// nothing in the store that looks like a backup; the Job carries the deadline for the kubelet.
func TestAStuckDumpStopsAtItsDeadline(t *testing.T) {
	ctx := context.Background()
	p := job.Params{Mode: job.ModeDump, StoreURL: "file://" + t.TempDir(), Engine: "postgres", Version: "17", Dir: "shop/orders/b1",
		Backup: "b1", Deadline: 3 * time.Second, Instance: &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"}}}
	res, err := job.Run(ctx, p, stuckEngine{}, os.Getenv)
	if err == nil || res.Reason != job.ReasonDeadlineExceeded || !strings.Contains(res.Message, "stopped after 3s, the backup's timeout") {
		t.Fatalf("a stuck dump: %+v, %v", res, err)
	}
	s, err := store.Open(ctx, p.StoreURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := backup.ReadManifest(ctx, s, p.Dir); !errors.Is(err, backup.ErrIncomplete) {
		t.Errorf("after the stopped dump: %v, want no manifest", err)
	}
	j := job.Build(job.Input{Name: "b1-backup", Namespace: "shop", Mode: job.ModeDump, Component: job.ComponentBackup, Owner: "b1",
		Image: "x", Engine: "postgres", Instance: p.Instance, Version: "17", Store: &v1alpha1.BackupStore{}, Dir: p.Dir, Backup: "b1", Deadline: 90 * time.Minute})
	if d := j.Spec.ActiveDeadlineSeconds; d == nil || *d != 5400 || !slices.Contains(j.Spec.Template.Spec.Containers[0].Args, "1h30m0s") {
		t.Errorf("the Job's deadline: %v, args %v", d, j.Spec.Template.Spec.Containers[0].Args)
	}
}

// The Job's load refuses, before it touches anything, a backup from a newer version, of another
// engine, with a changed byte, or without its key; and restores otherwise. Against MinIO and file://.
func TestRunChecksBeforeLoading(t *testing.T) {
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	for name, params := range map[string]job.Params{
		"minio": {StoreURL: m.URL(), StorePrefix: "p", Credentials: m.Credentials()},
		"file":  {StoreURL: "file://" + t.TempDir(), StorePrefix: "p"},
	} {
		t.Run(name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			if err := os.WriteFile(data, []byte("the rows as they were"), 0o600); err != nil {
				t.Fatal(err)
			}
			e := fileEngine{data}
			p := params
			p.Engine, p.Version, p.Dir, p.Backup, p.Key = "postgres", "17.2", "shop/orders/b1", "b1", []byte("0123456789abcdef0123456789abcdef")
			p.Instance = &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"}}
			p.Mode = job.ModeDump
			if res, err := job.Run(ctx, p, e, os.Getenv); err != nil {
				t.Fatal(res, err)
			}
			if err := os.WriteFile(data, []byte("changed since"), 0o600); err != nil {
				t.Fatal(err)
			}
			load := func(change func(*job.Params)) job.Result {
				q := p
				q.Mode = job.ModeLoad
				change(&q)
				res, _ := job.Run(ctx, q, e, os.Getenv)
				return res
			}
			unchanged := func(why string) {
				t.Helper()
				if b, _ := os.ReadFile(data); string(b) != "changed since" {
					t.Fatalf("%s: the data was touched: %q", why, b)
				}
			}
			for _, c := range []struct {
				why    string
				change func(*job.Params)
				reason string
			}{
				{"an older target version", func(q *job.Params) { q.Version = "15" }, job.ReasonVersionDowngrade},
				{"another engine", func(q *job.Params) { q.Engine = "rabbitmq" }, job.ReasonEngineMismatch},
				{"another key", func(q *job.Params) { q.Key = []byte("another key, long enough") }, job.ReasonWrongKey},
				{"no key", func(q *job.Params) { q.Key = nil }, job.ReasonWrongKey},
				{"no manifest", func(q *job.Params) { q.Dir = "shop/orders/never" }, job.ReasonIncomplete},
			} {
				if res := load(c.change); res.Reason != c.reason {
					t.Fatalf("%s: %+v, want %s", c.why, res, c.reason)
				}
				unchanged(c.why)
			}
			if res := load(func(q *job.Params) { q.Version = "17" }); res.Reason != job.ReasonCompleted {
				t.Fatalf("restore into the same major version: %+v", res)
			}
			if b, _ := os.ReadFile(data); string(b) != "the rows as they were" {
				t.Fatalf("restored %q", b)
			}

			// One changed byte in the stored data.
			if err := os.WriteFile(data, []byte("changed since"), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(ctx, p.StoreURL, p.StorePrefix, p.Credentials)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			man, err := backup.ReadManifest(ctx, s, p.Dir)
			if err != nil {
				t.Fatal(err)
			}
			key := s.Key(p.Dir, man.Data)
			stored, _ := s.Bucket.ReadAll(ctx, key)
			stored[len(stored)/2] ^= 1
			if err := s.Bucket.WriteAll(ctx, key, stored, nil); err != nil {
				t.Fatal(err)
			}
			if res := load(func(*job.Params) {}); res.Reason != job.ReasonChecksumMismatch || !bytes.Contains([]byte(res.Message), []byte("sha256")) {
				t.Fatalf("a changed byte: %+v", res)
			}
			unchanged("a changed byte")
		})
	}
}

// physicalEngine also takes base backups: the file, and where its "log" starts.
type physicalEngine struct{ fileEngine }

func (physicalEngine) Superseded(string, string) bool { return false }

func (f physicalEngine) BaseBackup(ctx context.Context, t engine.BackupTarget, w io.Writer) (fwagent.BaseBackupInfo, error) {
	now := time.Now().UTC()
	return fwagent.BaseBackupInfo{System: "7", StartSegment: "000000010000000000000004", Started: now, Completed: now, Role: "replica"},
		f.Dump(ctx, t, w)
}

// A physical backup's Job records the method and where the engine says its replay starts in the
// manifest, under the store's key like the rest of it; an engine without base backups is refused
// by name, and so is a load that claims a method.
func TestAPhysicalBackupRecordsWhereItStarts(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, []byte("the data files"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	p := job.Params{Mode: job.ModeDump, Method: backup.MethodPhysical, StoreURL: "file://" + t.TempDir(), Engine: "postgres", Version: "17",
		Dir: "shop/orders/b1", Backup: "b1", Key: key, Instance: &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"}}}
	if res, err := job.Run(ctx, p, fileEngine{data}, os.Getenv); err == nil || res.Reason != job.ReasonInvalid || !strings.Contains(res.Message, "takes no physical backups") {
		t.Fatalf("a physical backup of an engine without them: %+v %v", res, err)
	}
	if res, err := job.Run(ctx, p, physicalEngine{fileEngine{data}}, os.Getenv); err != nil {
		t.Fatal(res, err)
	}
	s, err := store.Open(ctx, p.StoreURL, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := backup.ReadManifest(ctx, s, p.Dir)
	if err == nil {
		err = backup.Authenticate(m, key)
	}
	if err != nil || m.Method != backup.MethodPhysical || m.Base == nil || m.Base.StartSegment != "000000010000000000000004" || m.Base.System != "7" {
		t.Fatalf("the manifest: %+v (base %+v), %v", m, m.Base, err)
	}
	// Loaded into a running instance as a dump would be, it is refused and nothing is touched.
	if err := os.WriteFile(data, []byte("the instance's data now"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := p
	load.Mode, load.Method = job.ModeLoad, ""
	if res, err := job.Run(ctx, load, physicalEngine{fileEngine{data}}, os.Getenv); err == nil || res.Reason != job.ReasonPhysical {
		t.Fatalf("loading a physical backup: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(data); string(b) != "the instance's data now" {
		t.Fatalf("the refused load changed the data: %q", b)
	}
	j := job.Build(job.Input{Name: "b1-backup", Namespace: "shop", Mode: job.ModeDump, Component: job.ComponentBackup, Owner: "b1",
		Image: "x", Engine: "postgres", Instance: p.Instance, Version: "17", Store: &v1alpha1.BackupStore{Spec: v1alpha1.BackupStoreSpec{URL: p.StoreURL}}, Dir: p.Dir, Backup: "b1", Method: backup.MethodPhysical})
	args := j.Spec.Template.Spec.Containers[0].Args
	parsed, err := job.ParseArgs(args[1:], func(k string) string {
		if k == job.EnvInstance {
			return `{"metadata":{"name":"orders","namespace":"shop"}}`
		}
		return ""
	})
	if err != nil || parsed.Method != backup.MethodPhysical {
		t.Fatalf("the Job's arguments %v parse to method %q (%v)", args, parsed.Method, err)
	}
	if _, err := job.ParseArgs([]string{"load", "--method", "Physical", "--engine", "postgres", "--store-url", "s3://b", "--dir", "d", "--version", "17"},
		func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "only a dump") {
		t.Fatalf("a load with a method: %v", err)
	}
}

func TestParseArgs(t *testing.T) {
	env := map[string]string{job.EnvInstance: `{"metadata":{"name":"orders","namespace":"shop"},"spec":{"engine":"postgres"}}`,
		"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", job.EnvKey: "k"}
	p, err := job.ParseArgs([]string{"load", "--engine", "postgres", "--store-url", "s3://b", "--dir", "d", "--version", "17"},
		func(k string) string { return env[k] })
	if err != nil || p.Instance.Name != "orders" || string(p.Credentials["AWS_SECRET_ACCESS_KEY"]) != "secret" || string(p.Key) != "k" {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := job.ParseArgs([]string{"load", "--engine", "postgres"}, func(string) string { return "" }); err == nil {
		t.Fatal("missing flags were accepted")
	}
	// A store that names a Secret with none of the keys (an empty one) opens with no credentials,
	// never with the pod's ambient ones: store.Open refuses it, naming the keys it needs.
	delete(env, "AWS_ACCESS_KEY_ID")
	delete(env, "AWS_SECRET_ACCESS_KEY")
	for secret, ambient := range map[string]bool{"": true, "store-credentials": false} {
		env[job.EnvCredentialsSecret] = secret
		p, err := job.ParseArgs([]string{"load", "--engine", "postgres", "--store-url", "s3://b?region=eu-west-1", "--dir", "d", "--version", "17"},
			func(k string) string { return env[k] })
		if err != nil || (p.Credentials == nil) != ambient {
			t.Fatalf("credentials Secret %q: credentials %v (%v), want ambient %v", secret, p.Credentials, err, ambient)
		}
		if _, err := store.Open(context.Background(), p.StoreURL, "", p.Credentials); !ambient &&
			(err == nil || !strings.Contains(err.Error(), "needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")) {
			t.Errorf("an empty credentials Secret opened the store: %v", err)
		}
	}
}
