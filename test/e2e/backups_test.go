//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/controllers"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

const (
	minioUser, minioPassword = "datafleet-e2e", "datafleet-e2e-secret"
	bucket                   = "backups"
	storePrefix              = "e2e"
)

// testBackups: a BackupStore on MinIO in the cluster (encrypted); PostgreSQL rows, roles and
// grants come back after a restore into a new instance and in place; RabbitMQ users, vhosts,
// permissions, queues and bindings come back in place (and in a new instance: the drills); a
// backup with one changed byte is refused before anything is touched; a PostgreSQL plan every
// minute with retention 2 keeps exactly 2 backups (objects and Backups) after 4 runs, a RabbitMQ
// plan exactly 2 after 3, and their drills restore the latest backup into a scratch instance.
func testBackups(t *testing.T) {
	ctx := context.Background()
	ensureCatalog(t, "postgres", v1alpha1.CatalogVersion{Version: "17", Image: env.images["postgres-17"], Default: true})
	ensureCatalog(t, "rabbitmq", v1alpha1.CatalogVersion{Version: "4.0", Image: env.images["rabbitmq-4.0"], Default: true})
	ns := testNamespace(t, "backups")
	jobs := recordJobs(t, ns)
	s3c := deployMinIO(t, ns)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	store := createStore(t, ns, ns, storePrefix, key)
	// A store that would send the operator's requests elsewhere in the cluster is refused.
	inside := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "inside", Namespace: ns}, Spec: v1alpha1.BackupStoreSpec{
		URL: "s3://x?endpoint=https://kubernetes.default.svc&use_path_style=true&region=us-east-1", CredentialsSecretRef: store.Spec.CredentialsSecretRef}}
	if err := env.c.Create(ctx, inside); err == nil || !strings.Contains(err.Error(), "backupStores.allowedEndpoints") {
		t.Fatalf("a store naming the API server as its endpoint: %v", err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(store), store); err != nil {
			return err
		}
		c := meta.FindStatusCondition(store.Status.Conditions, "Ready")
		return expect(c != nil && c.Status == metav1.ConditionTrue, "the store is probed", fmt.Sprintf("%+v", c))
	})
	t.Logf("BACKUPS: the store on MinIO is Ready: %s", meta.FindStatusCondition(store.Status.Conditions, "Ready").Message)

	storeRef := &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"}}
	// The PostgreSQL instance also archives its WAL continuously (issue #27), every 10 s when quiet.
	continuous := &v1alpha1.InstanceBackupSpec{StoreRef: storeRef.StoreRef,
		Continuous: &v1alpha1.ContinuousArchiving{ArchiveTimeout: &metav1.Duration{Duration: 10 * time.Second}}}
	db := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "postgres", Storage: &v1alpha1.StorageSpec{Size: resource.MustParse("1Gi")},
			DeletionPolicy: v1alpha1.DeletionPolicyDelete, Backup: continuous}}
	mq := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "mq", Namespace: ns},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: "rabbitmq", DeletionPolicy: v1alpha1.DeletionPolicyDelete, Backup: storeRef}}
	createInstance(t, db)
	createInstance(t, mq)
	waitInstanceReady(t, db)
	waitInstanceReady(t, mq)

	// The plan starts first: its six runs take six minutes, which the rest of the step overlaps.
	plan, seen := startPlan(t, db, "every-minute", &v1alpha1.BackupRetention{Count: ptr[int32](2)}, "*/3 * * * *")
	// RabbitMQ's plan keeps two; its drills restore the definitions into a scratch instance.
	defineRabbitMQ(t, mq)
	mqPlan, mqSeen := startPlan(t, mq, "mq-every-minute", &v1alpha1.BackupRetention{Count: ptr[int32](2)}, "1-59/3 * * * *")
	t.Cleanup(func() { deleteBackups(t, ns) })

	// PostgreSQL: a database with rows, a role made by hand with a grant.
	psql(t, ns, "db-0", "CREATE ROLE analyst LOGIN PASSWORD 'analyst-secret'")
	psql(t, ns, "db-0", "CREATE DATABASE shop")
	psqlIn(t, ns, "db-0", "shop", "CREATE TABLE orders (id serial PRIMARY KEY, what text); "+
		"INSERT INTO orders (what) SELECT 'order ' || g FROM generate_series(1, 10000) g; GRANT SELECT ON orders TO analyst")
	checkContinuousArchiving(t, s3c, db)
	base := checkPhysicalBackup(t, s3c, db)
	target := checkPointInTimeRestore(t, s3c, db, base)
	checkPointInTimeRestoreInPlace(t, s3c, db, base, target)
	checkArchiveRetention(t, s3c, db, base)
	// After the retention's check, whose store this plan's own physical backups would change.
	pitrPlan := startPointInTimeDrill(t, db)
	b1 := backupOf(t, ns, "db-1", "db")
	if !b1.Status.Encrypted || b1.Status.SizeBytes == 0 || len(b1.Status.SHA256) != 64 {
		t.Fatalf("backup status: %+v", b1.Status)
	}
	t.Logf("BACKUPS: postgres backup %s: %d bytes, encrypted, at %s", b1.Name, b1.Status.SizeBytes, b1.Status.Location)
	psqlIn(t, ns, "db-0", "shop", "DROP TABLE orders")

	restoreOf(t, ns, "db-to-new", "db-1", v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: "db-restored"}}, "Completed")
	restored := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "db-restored", Namespace: ns}}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), restored) })
	checkOrders := func(pod string) {
		t.Helper()
		if got := psqlIn(t, ns, pod, "shop", "SELECT count(*) || ' ' || max(id) FROM orders"); got != "10000 10000" {
			t.Fatalf("%s: orders has %q, want 10000 rows up to id 10000", pod, got)
		}
		if got := psqlIn(t, ns, pod, "shop", "SELECT has_table_privilege('analyst', 'orders', 'SELECT')::text || ' ' || has_table_privilege('analyst', 'orders', 'DELETE')::text"); got != "true false" {
			t.Fatalf("%s: analyst's privileges on orders: %s", pod, got)
		}
	}
	checkOrders("db-restored-0")
	t.Logf("BACKUPS: restored into a new instance: 10000 rows, the role and its grant")

	rs := restoreOf(t, ns, "db-wrong-confirm", "db-1", v1alpha1.RestoreTarget{InPlace: &v1alpha1.InPlaceRestore{Confirm: "dbx"}}, "Failed")
	if c := meta.FindStatusCondition(rs.Status.Conditions, "Ready"); c.Reason != controllers.ReasonConfirmationMismatch {
		t.Fatalf("in place with a wrong confirmation: %+v", c)
	}
	restoreOf(t, ns, "db-in-place", "db-1", v1alpha1.RestoreTarget{InPlace: &v1alpha1.InPlaceRestore{Confirm: "db"}}, "Completed")
	checkOrders("db-0")
	t.Logf("BACKUPS: restored in place after the table was dropped: every row is back")

	// One changed byte: the restore is refused and the instance keeps what it has.
	b2 := backupOf(t, ns, "db-2", "db")
	psqlIn(t, ns, "db-0", "shop", "INSERT INTO orders (what) VALUES ('after the backup')")
	flipByte(t, s3c, b2)
	rs = restoreOf(t, ns, "db-corrupt", "db-2", v1alpha1.RestoreTarget{InPlace: &v1alpha1.InPlaceRestore{Confirm: "db"}}, "Failed")
	if c := meta.FindStatusCondition(rs.Status.Conditions, "Ready"); c.Reason != "ChecksumMismatch" || !strings.Contains(c.Message, "sha256") {
		t.Fatalf("a corrupted backup's restore: %+v", c)
	}
	if got := psqlIn(t, ns, "db-0", "shop", "SELECT count(*) FROM orders"); got != "10001" {
		t.Fatalf("after the refused restore orders has %s rows, want the 10001 it had", got)
	}
	t.Logf("BACKUPS: a backup with one changed byte was refused (%s) and nothing was touched", meta.FindStatusCondition(rs.Status.Conditions, "Ready").Message)

	checkRabbitMQBackup(t, mq)
	checkBackupsMove(t, ns)
	checkPlan(t, s3c, storePrefix, plan, seen, 4)
	checkPlan(t, s3c, storePrefix, mqPlan, mqSeen, 3)
	checkPointInTimeDrill(t, pitrPlan)
	checkNoCredentialLeaks(t, ns, jobs, map[string]string{"the store's secret key": minioPassword, "the encryption key": base64.StdEncoding.EncodeToString(key)})
}

// checkContinuousArchiving waits for the instance's archive in the store to hold the segment the
// primary was writing (after a switch), and for its ContinuousArchiving condition to say so.
func checkContinuousArchiving(t *testing.T, s3c *s3.Client, inst *v1alpha1.ServiceInstance) {
	t.Helper()
	ctx := context.Background()
	segment := psql(t, inst.Namespace, inst.Name+"-0", "SELECT pg_walfile_name(pg_current_wal_lsn())")
	psql(t, inst.Namespace, inst.Name+"-0", "SELECT pg_switch_wal()")
	system := psql(t, inst.Namespace, inst.Name+"-0", "SELECT system_identifier FROM pg_control_system()")
	dir := path.Join(storePrefix, "wal", inst.Namespace, inst.Name, system) + "/"
	testenv.Eventually(t, waitTimeout, func() error {
		keys, err := storeKeys(s3c, dir)
		if err != nil {
			return err
		}
		if !slices.Contains(keys, segment+".gz.enc") {
			return fmt.Errorf("%s holds %v, not yet %s.gz.enc", dir, keys, segment)
		}
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		c := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionContinuousArchiving)
		return expect(c != nil && c.Status == metav1.ConditionTrue, "ContinuousArchiving is True", fmt.Sprintf("%+v", c))
	})
	t.Logf("BACKUPS: %s archives its WAL: %s is in %s, encrypted; %s", inst.Name, segment, dir,
		meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionContinuousArchiving).Message)
}

// storeKeys lists the objects under dir in the test's bucket (one page: an e2e archive holds a few
// dozen), named relative to dir.
func storeKeys(s3c *s3.Client, dir string) ([]string, error) {
	out, err := s3c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(dir)})
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), dir))
	}
	return keys, nil
}

// checkArchiveRetention takes a second physical backup of an archiving instance and deletes the
// first: the archive then holds no segment older than the second's start (on its timeline or an
// earlier one), having held some before, and the recoverable window starts at the second.
func checkArchiveRetention(t *testing.T, s3c *s3.Client, inst *v1alpha1.ServiceInstance, first *v1alpha1.Backup) {
	t.Helper()
	ctx := context.Background()
	second, m := physicalBackup(t, s3c, inst, inst.Name+"-base-2")
	dir := path.Join(storePrefix, "wal", inst.Namespace, inst.Name, m.Base.System) + "/"
	older := func() ([]string, int, error) {
		keys, err := storeKeys(s3c, dir)
		var out []string
		for _, k := range keys {
			name, _, _ := strings.Cut(k, ".")
			if len(name) == 24 && name[:8] <= m.Base.StartSegment[:8] && name[8:] < m.Base.StartSegment[8:] {
				out = append(out, name)
			}
		}
		return out, len(keys), err
	}
	before, _, err := older()
	if err != nil || len(before) == 0 {
		t.Fatalf("before %s goes the archive should hold segments older than %s's start %s: %v %v", first.Name, second.Name, m.Base.StartSegment, before, err)
	}
	if err := env.c.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(first), first); !apierrors.IsNotFound(err) {
			return fmt.Errorf("Backup %s still there (%v)", first.Name, err)
		}
		left, total, err := older()
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("the archive still holds %v, older than %s (%d objects)", left, m.Base.StartSegment, total)
		}
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(inst), inst); err != nil {
			return err
		}
		w := inst.Status.RecoverableWindow
		return expect(w != nil && w.From.Equal(second.Status.CompletionTime), "the window starts at "+second.Name, fmt.Sprintf("%+v", w))
	})
	t.Logf("BACKUPS: %s deleted: the %d segments of %s older than %s's start %s are gone from the store; the window starts at %s",
		first.Name, len(before), inst.Name, second.Name, m.Base.StartSegment, second.Status.CompletionTime.UTC().Format(time.RFC3339))
}

// checkPhysicalBackup takes a physical backup (a base backup) of an archiving instance and reads
// its manifest in the store: the method, its database system and where its replay starts.
func checkPhysicalBackup(t *testing.T, s3c *s3.Client, inst *v1alpha1.ServiceInstance) *v1alpha1.Backup {
	t.Helper()
	b, m := physicalBackup(t, s3c, inst, inst.Name+"-base")
	system := psql(t, inst.Namespace, inst.Name+"-0", "SELECT system_identifier FROM pg_control_system()")
	if m.Method != backup.MethodPhysical || m.Base == nil || m.Base.System != system || len(m.Base.StartSegment) != 24 || m.Base.Role != "primary" {
		t.Fatalf("the physical backup's manifest: method %q, base %+v; want system %s from the primary", m.Method, m.Base, system)
	}
	t.Logf("BACKUPS: physical backup %s of %s: %d bytes, from %s (%s), replay starts at %s", b.Name, inst.Name, b.Status.SizeBytes,
		m.Base.Member, m.Base.Role, m.Base.StartSegment)
	return b
}

// physicalBackup takes a physical backup and reads its manifest in the store.
func physicalBackup(t *testing.T, s3c *s3.Client, inst *v1alpha1.ServiceInstance, name string) (*v1alpha1.Backup, backup.Manifest) {
	t.Helper()
	b := backupWith(t, inst.Namespace, name, v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: inst.Name},
		Method: v1alpha1.BackupPhysical})
	out, err := s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket),
		Key: aws.String(path.Join(storePrefix, controllers.Dir(b), "manifest.json"))})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	var m backup.Manifest
	if err := json.NewDecoder(io.LimitReader(out.Body, 1<<20)).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Base == nil || len(m.Base.StartSegment) != 24 {
		t.Fatalf("the physical backup %s's manifest has no base: %+v", name, m)
	}
	return b, m
}

// checkPointInTimeRestore writes a marker row, takes a time a second after it, writes a second
// marker, and restores the physical backup with the archived log to that time into a new
// instance: the first marker is there, the second is not, and the recovery's Secret (copies of
// the store's credentials and key) is gone once the restore completed.
func checkPointInTimeRestore(t *testing.T, s3c *s3.Client, inst *v1alpha1.ServiceInstance, base *v1alpha1.Backup) metav1.Time {
	t.Helper()
	ns, pod := inst.Namespace, inst.Name+"-0"
	psql(t, ns, pod, "CREATE TABLE pitr_marker (id int PRIMARY KEY); INSERT INTO pitr_marker VALUES (1)")
	time.Sleep(1500 * time.Millisecond)
	// The Restore's time has whole seconds: the second started 0.5 s or more after marker 1.
	now, err := time.Parse(time.RFC3339Nano, psql(t, ns, pod, `SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`))
	if err != nil {
		t.Fatal(err)
	}
	target := metav1.NewTime(now.Truncate(time.Second))
	time.Sleep(1500 * time.Millisecond)
	psql(t, ns, pod, "INSERT INTO pitr_marker VALUES (2)")
	// Replay stops at the first commit past the target: the archive must hold it.
	checkContinuousArchiving(t, s3c, inst)

	name := inst.Name + "-pitr"
	restored := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	t.Cleanup(func() { _ = env.c.Delete(context.Background(), restored) })
	rs := restoreWith(t, ns, name, v1alpha1.RestoreSpec{BackupRef: v1alpha1.LocalObjectReference{Name: base.Name},
		Target: v1alpha1.RestoreTarget{NewInstance: &v1alpha1.NewInstanceTarget{Name: name}}, TargetTime: &target}, v1alpha1.BackupCompleted)
	if got := psql(t, ns, name+"-0", "SELECT string_agg(id::text, ',' ORDER BY id) FROM pitr_marker"); got != "1" {
		t.Fatalf("restored to %s: pitr_marker holds %q, want only the row committed before it", target.UTC().Format(time.RFC3339), got)
	}
	err = env.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name + "-recovery"}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("the recovery's Secret after the restore: %v", err)
	}
	t.Logf("BACKUPS: point-in-time restore of %s to %s into %s took %s: marker 1 is there, marker 2 is not",
		base.Name, target.UTC().Format(time.RFC3339), name, rs.Status.CompletionTime.Sub(rs.Status.StartTime.Time))
	// The restore waited, if it had to, for the source's recoverable window to reach the target.
	src := &v1alpha1.ServiceInstance{}
	if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(inst), src); err != nil {
		t.Fatal(err)
	}
	if w := src.Status.RecoverableWindow; w == nil || !w.From.Equal(base.Status.CompletionTime) || w.To.Before(&target) {
		t.Fatalf("%s's recoverable window after the restore to %s: %+v, want from %s (the physical backup's completion)", inst.Name, target, w, base.Status.CompletionTime)
	}
	return target
}

// checkPointInTimeRestoreInPlace restores the instance itself (in place, confirmed by its name)
// from its physical backup to target, between the markers checkPointInTimeRestore wrote: its pod
// restarts once, marker 1 is there and marker 2 is not, the rows from before the target are, the
// recovery's Secret is gone, and the instance archives on, on a new timeline.
func checkPointInTimeRestoreInPlace(t *testing.T, s3c *s3.Client, inst *v1alpha1.ServiceInstance, base *v1alpha1.Backup, target metav1.Time) {
	t.Helper()
	ctx := context.Background()
	ns, pod := inst.Namespace, inst.Name+"-0"
	before := &corev1.Pod{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, before); err != nil {
		t.Fatal(err)
	}
	timeline := psql(t, ns, pod, "SELECT timeline_id FROM pg_control_checkpoint()")
	rs := restoreWith(t, ns, inst.Name+"-back-in-time", v1alpha1.RestoreSpec{BackupRef: v1alpha1.LocalObjectReference{Name: base.Name},
		Target: v1alpha1.RestoreTarget{InPlace: &v1alpha1.InPlaceRestore{Confirm: inst.Name}}, TargetTime: &target}, v1alpha1.BackupCompleted)
	after := &corev1.Pod{}
	if err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, after); err != nil || after.UID == before.UID {
		t.Fatalf("%s after the in-place restore: %v, want a new pod (the restore restarts every member)", pod, err)
	}
	if got := psql(t, ns, pod, "SELECT string_agg(id::text, ',' ORDER BY id) FROM pitr_marker"); got != "1" {
		t.Fatalf("restored in place to %s: pitr_marker holds %q, want only the row committed before it", target.UTC().Format(time.RFC3339), got)
	}
	if got := psqlIn(t, ns, pod, "shop", "SELECT count(*) FROM orders"); got != "10000" {
		t.Fatalf("restored in place to %s: orders holds %s rows, want the 10000 committed long before", target.UTC().Format(time.RFC3339), got)
	}
	err := env.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: inst.Name + "-recovery"}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("the recovery's Secret after the in-place restore: %v", err)
	}
	now := psql(t, ns, pod, "SELECT timeline_id FROM pg_control_checkpoint()")
	if now == timeline {
		t.Fatalf("after the in-place restore %s is still on timeline %s", pod, now)
	}
	checkContinuousArchiving(t, s3c, inst)
	t.Logf("BACKUPS: in-place point-in-time restore of %s to %s took %s: marker 1 is there, marker 2 is not; timeline %s -> %s, archiving on",
		inst.Name, target.UTC().Format(time.RFC3339), rs.Status.CompletionTime.Sub(rs.Status.StartTime.Time), timeline, now)
}

// checkNoCredentialLeaks looks for each secret in everything the backups made readable without
// the Secrets: the Jobs (arguments, environment) and their pods' logs as recorded while they
// lived, events, the backup objects' statuses, and the operator's logs.
func checkNoCredentialLeaks(t *testing.T, ns string, jobs *jobRecorder, secrets map[string]string) {
	t.Helper()
	ctx := context.Background()
	var text strings.Builder
	recorded, where := jobs.seen()
	text.WriteString(recorded)
	places := []string{where}
	for _, l := range []client.ObjectList{&corev1.EventList{}, &v1alpha1.BackupList{}, &v1alpha1.RestoreList{},
		&v1alpha1.BackupStoreList{}, &v1alpha1.BackupPlanList{}} {
		if err := env.c.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(l)
		text.Write(b)
		places = append(places, fmt.Sprintf("%T", l))
	}
	var operator corev1.PodList
	if err := env.c.List(ctx, &operator, client.InNamespace(releaseNamespace)); err != nil {
		t.Fatal(err)
	}
	for _, p := range operator.Items {
		for _, c := range p.Spec.Containers {
			logs, err := env.cs.CoreV1().Pods(releaseNamespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name}).DoRaw(ctx)
			if err == nil {
				text.Write(logs)
				places = append(places, "logs of "+p.Name)
			}
		}
	}
	// A control, so that a search that finds nothing because it looked nowhere fails: the
	// arguments every backup Job carries must be there.
	if seen := `"--dir","` + ns + `/`; !strings.Contains(text.String(), seen) {
		t.Errorf("the search for credentials saw no Job's arguments (%q) in: %s", seen, strings.Join(places, ", "))
	}
	for what, secret := range secrets {
		if strings.Contains(text.String(), secret) {
			t.Errorf("%s appears in one of: %s", what, strings.Join(places, ", "))
		}
	}
	t.Logf("BACKUPS: no credential in: %s", strings.Join(places, ", "))
}

// deployMinIO runs MinIO in the namespace and creates the bucket; it returns a client that
// reaches it from the host through the Service's ClusterIP.
func deployMinIO(t *testing.T, ns string) *s3.Client {
	t.Helper()
	return deployMinIOAs(t, ns, minioUser, minioPassword)
}

// deployMinIOAs deploys MinIO in ns with the root user and password given, and its bucket.
func deployMinIOAs(t *testing.T, ns, minioUser, minioPassword string) *s3.Client {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "minio"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: ns, Labels: labels}, Spec: corev1.PodSpec{
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr[int64](65532), FSGroup: ptr[int64](65532),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{
			Name: "minio", Image: env.images["minio"], ImagePullPolicy: corev1.PullNever,
			Args: []string{"server", "--address", ":9000", "/data"},
			Env: []corev1.EnvVar{{Name: "MINIO_ROOT_USER", Value: minioUser}, {Name: "MINIO_ROOT_PASSWORD", Value: minioPassword},
				{Name: "MINIO_BROWSER", Value: "off"}, {Name: "MINIO_UPDATE", Value: "off"}},
			Ports: []corev1.ContainerPort{{ContainerPort: 9000}},
			// MinIO keeps its certificates directory under $HOME (/tmp): the root filesystem is read-only.
			VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "tmp", MountPath: "/tmp"}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/minio/health/ready", Port: intstr.FromInt32(9000)}}},
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
		}},
		Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: labels, Ports: []corev1.ServicePort{{Name: "s3", Port: 9000, TargetPort: intstr.FromInt32(9000)}}}}
	for _, o := range []client.Object{pod, svc} {
		if err := env.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + serviceAddress(t, ns, "minio", 9000)), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(minioUser, minioPassword, "")})
	testenv.Eventually(t, waitTimeout, func() error {
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
		return err
	})
	return c
}

// minioStore deploys MinIO in ns and a BackupStore "minio" in front of it, without encryption
// or prefix, and returns a client of the MinIO.
func minioStore(t *testing.T, ns string) *s3.Client {
	t.Helper()
	s3c := deployMinIO(t, ns)
	createStore(t, ns, ns, "", nil)
	return s3c
}

// createStore creates a BackupStore "minio" in ns in front of the MinIO of minioNamespace, under
// prefix, encrypted with key unless it is nil, with the Secrets it names.
func createStore(t *testing.T, ns, minioNamespace, prefix string, key []byte) *v1alpha1.BackupStore {
	t.Helper()
	ctx := context.Background()
	secrets := map[string]map[string]string{"store-credentials": {"AWS_ACCESS_KEY_ID": minioUser, "AWS_SECRET_ACCESS_KEY": minioPassword}}
	store := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: ns}, Spec: v1alpha1.BackupStoreSpec{
		URL:                  fmt.Sprintf("s3://%s?endpoint=http://minio.%s.svc:9000&use_path_style=true&region=us-east-1", bucket, minioNamespace),
		Prefix:               prefix,
		CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "store-credentials"},
	}}
	if key != nil {
		secrets["backup-key"] = map[string]string{"key": base64.StdEncoding.EncodeToString(key)}
		store.Spec.Encryption = &v1alpha1.BackupEncryption{KeySecretRef: v1alpha1.SecretKeyReference{Name: "backup-key", Key: "key"}}
	}
	for name, data := range secrets {
		if err := env.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.c.Create(ctx, store); err != nil {
		t.Fatal(err)
	}
	return store
}

func backupOf(t *testing.T, ns, name, instance string) *v1alpha1.Backup {
	t.Helper()
	return backupWith(t, ns, name, v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: instance}})
}

// backupWith creates a Backup of spec and waits for it to complete.
func backupWith(t *testing.T, ns, name string, spec v1alpha1.BackupSpec) *v1alpha1.Backup {
	t.Helper()
	b := &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	if err := env.c.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, waitTimeout, func() error {
		if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(b), b); err != nil {
			return err
		}
		if b.Status.Phase == v1alpha1.BackupFailed {
			t.Fatalf("backup %s failed: %+v", name, b.Status.Conditions)
		}
		return expect(b.Status.Phase == v1alpha1.BackupCompleted, "backup "+name+" completes", fmt.Sprintf("%s %+v", b.Status.Phase, b.Status.Conditions))
	})
	return b
}

func restoreOf(t *testing.T, ns, name, backup string, target v1alpha1.RestoreTarget, phase v1alpha1.BackupPhase) *v1alpha1.Restore {
	t.Helper()
	return restoreWith(t, ns, name, v1alpha1.RestoreSpec{BackupRef: v1alpha1.LocalObjectReference{Name: backup}, Target: target}, phase)
}

// restoreWith creates a Restore of spec and waits for it to end in phase.
func restoreWith(t *testing.T, ns, name string, spec v1alpha1.RestoreSpec, phase v1alpha1.BackupPhase) *v1alpha1.Restore {
	t.Helper()
	rs := &v1alpha1.Restore{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	if err := env.c.Create(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*waitTimeout, func() error {
		if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(rs), rs); err != nil {
			return err
		}
		if done := rs.Status.Phase == v1alpha1.BackupCompleted || rs.Status.Phase == v1alpha1.BackupFailed; done && rs.Status.Phase != phase {
			t.Fatalf("restore %s ended %s, want %s: %+v", name, rs.Status.Phase, phase, rs.Status.Conditions)
		}
		return expect(rs.Status.Phase == phase, "restore "+name+" ends "+string(phase), fmt.Sprintf("%s %+v", rs.Status.Phase, rs.Status.Conditions))
	})
	t.Logf("BACKUPS: restore %s: %s", name, conditionText(rs.Status.Conditions))
	return rs
}

func conditionText(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, "Ready"); c != nil {
		return c.Reason + ": " + c.Message
	}
	return ""
}

// flipByte changes one byte in the middle of a backup's data object, as bit rot would.
func flipByte(t *testing.T, c *s3.Client, b *v1alpha1.Backup) {
	t.Helper()
	ctx := context.Background()
	key := path.Join(storePrefix, controllers.Dir(b), "data.gz.enc")
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || int64(len(data)) != b.Status.SizeBytes {
		t.Fatalf("reading %s: %d bytes, %v", key, len(data), err)
	}
	data[len(data)/2] ^= 0x01
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(string(data))}); err != nil {
		t.Fatal(err)
	}
}

// checkRabbitMQBackup: the definitions defineRabbitMQ made come back after they are deleted and
// the backup is restored in place.
func checkRabbitMQBackup(t *testing.T, mq *v1alpha1.ServiceInstance) {
	t.Helper()
	call, must := rabbitManagement(t, mq)
	b := backupOf(t, mq.Namespace, "mq-1", "mq")
	must(http.MethodDelete, "/api/vhosts/orders", "")
	must(http.MethodDelete, "/api/users/app", "")
	restoreOf(t, mq.Namespace, "mq-in-place", b.Name, v1alpha1.RestoreTarget{InPlace: &v1alpha1.InPlaceRestore{Confirm: "mq"}}, "Completed")
	for p, want := range map[string]string{
		"/api/users/app":                                  `"name":"app"`,
		"/api/permissions/orders/app":                     `"configure":"^app\\.`,
		"/api/queues/orders/app.created":                  `"type":"quorum"`,
		"/api/bindings/orders/e/app.events/q/app.created": `"routing_key":"order.created"`,
	} {
		if code, answer := call(http.MethodGet, p, ""); code != http.StatusOK || !strings.Contains(answer, want) {
			t.Fatalf("after the restore %s: %d %s", p, code, answer)
		}
	}
	checkRabbitMQApp(t, mq)
	t.Logf("BACKUPS: rabbitmq users, vhosts, permissions, queues and bindings came back after an in-place restore")
	// Into a new instance: the RabbitMQ plan's drills (checkPlan), whose Restore looks up every
	// imported user, vhost, permission, exchange, queue and binding.
}

// checkRabbitMQApp logs in as the restored user app to vhost orders of the instance and finds
// its quorum queue there.
func checkRabbitMQApp(t *testing.T, mq *v1alpha1.ServiceInstance) {
	t.Helper()
	conn, err := amqp.Dial(fmt.Sprintf("amqp://app:app-secret@%s/orders", serviceAddress(t, mq.Namespace, mq.Name, 5672)))
	if err != nil {
		t.Fatalf("app cannot log in to vhost orders of %s after the restore: %v", mq.Name, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive("app.created", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatalf("queue app.created in vhost orders of %s after the restore: %v", mq.Name, err)
	}
}

// defineRabbitMQ makes, through the management API, what a RabbitMQ backup carries: a vhost, a
// user with a password and its permissions, an exchange, a quorum queue and a binding. Made
// before the instance's plan starts, so that every backup of it, and every drill, has them.
func defineRabbitMQ(t *testing.T, mq *v1alpha1.ServiceInstance) {
	t.Helper()
	_, must := rabbitManagement(t, mq)
	must(http.MethodPut, "/api/vhosts/orders", `{}`)
	must(http.MethodPut, "/api/users/app", `{"password":"app-secret","tags":""}`)
	must(http.MethodPut, "/api/permissions/orders/app", `{"configure":"^app\\.","write":".*","read":".*"}`)
	must(http.MethodPut, "/api/exchanges/orders/app.events", `{"type":"topic","durable":true}`)
	must(http.MethodPut, "/api/queues/orders/app.created", `{"durable":true,"arguments":{"x-queue-type":"quorum"}}`)
	must(http.MethodPost, "/api/bindings/orders/e/app.events/q/app.created", `{"routing_key":"order.created"}`)
}

// watchPlanBackups records the name of every Backup the plan makes, until the test ends.
func watchPlanBackups(t *testing.T, ns, plan string) func() map[string]bool {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	seen := map[string]bool{}
	done := make(chan struct{})
	var snapshot = make(chan map[string]bool)
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			list := &v1alpha1.BackupList{}
			if env.c.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{controllers.PlanLabel: plan}) == nil {
				for _, b := range list.Items {
					seen[b.Name] = true
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case snapshot <- maps.Clone(seen):
			}
		}
	}()
	return func() map[string]bool { return <-snapshot }
}

// checkPlan waits for the plan to have made runs backups and suspends it; then it finds that
// retention pruned the plan's first backup, that every completed Backup left is one the plan's
// retention keeps (a count: exactly that many; an age: all but the newest finished within it,
// give or take the minute between the plan's runs), and that the store holds exactly those
// backups and nothing else of the plan's; and it waits for a drill to pass.
func checkPlan(t *testing.T, s3c *s3.Client, prefix string, plan *v1alpha1.BackupPlan, seen func() map[string]bool, runs int) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Minute, func() error {
		return expect(len(seen()) >= runs, fmt.Sprintf("the plan has made %d backups", runs), fmt.Sprint(len(seen())))
	})
	first := slices.Min(slices.Collect(maps.Keys(seen())))
	// Suspended, nothing new comes while the Backups and the store are compared; retention still prunes.
	patchPlan(t, plan, func(s *v1alpha1.BackupPlanSpec) { s.Suspend = true })
	r := plan.Spec.Retention
	var names []string
	testenv.Eventually(t, 3*time.Minute, func() error {
		list := &v1alpha1.BackupList{}
		if err := env.c.List(ctx, list, client.InNamespace(plan.Namespace), client.MatchingLabels{controllers.PlanLabel: plan.Name}); err != nil {
			return err
		}
		names = nil
		live := map[string]bool{}
		var newest time.Time
		for _, b := range list.Items {
			names = append(names, fmt.Sprintf("%s(%s)", b.Name, b.Status.Phase))
			if b.Status.Phase != v1alpha1.BackupCompleted || !b.DeletionTimestamp.IsZero() {
				return expect(false, "only completed Backups of the plan", strings.Join(names, " "))
			}
			live[path.Base(controllers.Dir(&b))] = true
			if b.Status.CompletionTime.After(newest) {
				newest = b.Status.CompletionTime.Time
			}
		}
		if slices.ContainsFunc(list.Items, func(b v1alpha1.Backup) bool { return b.Name == first }) {
			return expect(false, "the plan's first backup "+first+" was pruned", strings.Join(names, " "))
		}
		if r.Count != nil && len(live) != int(*r.Count) {
			return expect(false, fmt.Sprintf("exactly %d completed Backups", *r.Count), strings.Join(names, " "))
		}
		if r.MaxAge != nil {
			for _, b := range list.Items {
				if age := time.Since(b.Status.CompletionTime.Time); !b.Status.CompletionTime.Time.Equal(newest) && age > r.MaxAge.Duration+70*time.Second {
					return expect(false, "no Backup but the newest older than the plan's maxAge "+r.MaxAge.Duration.String(), fmt.Sprintf("%s finished %s ago", b.Name, age.Round(time.Second)))
				}
			}
		}
		// The store: a directory per Backup (controllers.Dir), with its manifest, and nothing else
		// of the plan's (a pruned backup leaves nothing behind).
		out, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket),
			Prefix: aws.String(path.Join(prefix, plan.Namespace, plan.Spec.InstanceRef.Name, plan.Name) + "-")})
		if err != nil {
			return err
		}
		stored := map[string]bool{}
		for _, o := range out.Contents {
			stored[path.Base(path.Dir(*o.Key))] = stored[path.Base(path.Dir(*o.Key))] || strings.HasSuffix(*o.Key, "/manifest.json")
		}
		return expect(maps.Equal(stored, live), "the store holds exactly the plan's Backups, each with its manifest", fmt.Sprintf("store %v, Backups %v", stored, live))
	})
	t.Logf("BACKUPS: after %d runs plan %s (retention %s) keeps %s in the store and as Backups; its first backup %s was pruned",
		len(seen()), plan.Name, retentionText(r), strings.Join(names, " "), first)
	checkDrill(t, plan)
}

func retentionText(r *v1alpha1.BackupRetention) string {
	if r.Count != nil {
		return fmt.Sprintf("count %d", *r.Count)
	}
	return "maxAge " + r.MaxAge.Duration.String()
}

// checkDrill waits for a drill of the plan to pass and for its scratch instance to be gone.
func checkDrill(t *testing.T, plan *v1alpha1.BackupPlan) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 8*time.Minute, func() error {
		if err := env.c.Get(ctx, client.ObjectKeyFromObject(plan), plan); err != nil {
			return err
		}
		d := plan.Status.LastDrill
		if d != nil && d.Result == controllers.DrillFailed {
			t.Fatalf("the drill of plan %s failed: %+v", plan.Name, d)
		}
		return expect(d != nil && d.Result == controllers.DrillPassed, "a drill of plan "+plan.Name+" passed", fmt.Sprintf("%+v", d))
	})
	t.Logf("BACKUPS: drill of %s: %s", plan.Status.LastDrill.Backup, plan.Status.LastDrill.Message)
	scratch := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: plan.Name + "-drill", Namespace: plan.Namespace}}
	waitGone(t, "the drill's scratch instance", scratch)
}

// startPlan creates a plan of the instance every minute with the retention and the drill
// schedule given, and starts recording its Backups.
func startPlan(t *testing.T, inst *v1alpha1.ServiceInstance, name string, r *v1alpha1.BackupRetention, drill string) (*v1alpha1.BackupPlan, func() map[string]bool) {
	t.Helper()
	plan := &v1alpha1.BackupPlan{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: inst.Namespace}, Spec: v1alpha1.BackupPlanSpec{
		InstanceRef: v1alpha1.LocalObjectReference{Name: inst.Name}, Schedule: "* * * * *", TimeZone: "Europe/Paris",
		Retention: r, Drill: &v1alpha1.BackupDrill{Schedule: drill},
	}}
	if err := env.c.Create(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	return plan, watchPlanBackups(t, inst.Namespace, plan.Name)
}

func patchPlan(t *testing.T, p *v1alpha1.BackupPlan, change func(*v1alpha1.BackupPlanSpec)) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if err := env.c.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		change(&p.Spec)
		return env.c.Update(context.Background(), p)
	})
}

// deleteBackups deletes the namespace's Backups while the operator runs, so that their
// finalizers delete the objects in the store before the namespace goes.
func deleteBackups(t *testing.T, ns string) {
	ctx := context.Background()
	_ = env.c.DeleteAllOf(ctx, &v1alpha1.BackupPlan{}, client.InNamespace(ns))
	_ = env.c.DeleteAllOf(ctx, &v1alpha1.Backup{}, client.InNamespace(ns))
	testenv.Eventually(t, waitTimeout, func() error {
		list := &v1alpha1.BackupList{}
		if err := env.c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		return expect(len(list.Items) == 0, "the Backups are deleted", fmt.Sprint(len(list.Items)))
	})
}
