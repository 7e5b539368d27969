package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
	"github.com/datafleet-dev/datafleet/framework/engine/enginetest/managertest"
	"github.com/datafleet-dev/datafleet/framework/instance"
	"github.com/datafleet-dev/datafleet/framework/operator"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// spec.backup.continuous on a real API server: without its BackupStore nothing is rendered and
// both the Ready and the ContinuousArchiving conditions say why; once the store exists (the
// store's watch reconciles the instance) the pods mount the archive's configuration, credentials
// and key, and the agent is told where it is; a store the pods could not share (file://) is
// refused by name. The schema refuses continuous archiving without a storeRef.
func TestContinuousArchivingNeedsAUsableStore(t *testing.T) {
	env := testenv.Start(t)
	mgr, err := env.ManagerWith([]engine.Engine{New()}, operator.Options{MaxConcurrentReconciles: 2, AgentImage: managertest.AgentImage,
		StorePolicy: store.Policy{Endpoints: []string{"minio.*.svc:9000"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Stop)
	ctx, c := context.Background(), env.Client
	continuous := &v1alpha1.InstanceBackupSpec{StoreRef: &v1alpha1.LocalObjectReference{Name: "minio"},
		Continuous: &v1alpha1.ContinuousArchiving{}}
	inst := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "ledger", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Version: release.Version, Backup: continuous}}
	for _, o := range []client.Object{
		&v1alpha1.VersionCatalog{ObjectMeta: metav1.ObjectMeta{Name: Name}, Spec: v1alpha1.VersionCatalogSpec{Engine: Name,
			Versions: []v1alpha1.CatalogVersion{{Version: release.Version, Image: release.Image, Default: true}}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		inst,
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	noStoreRef := &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "nowhere", Namespace: "apps"},
		Spec: v1alpha1.ServiceInstanceSpec{Engine: Name, Backup: &v1alpha1.InstanceBackupSpec{Continuous: &v1alpha1.ContinuousArchiving{}}}}
	if err := c.Create(ctx, noStoreRef); err == nil || !strings.Contains(err.Error(), "continuous archiving needs storeRef") {
		t.Fatalf("continuous archiving without a storeRef: %v", err)
	}
	tooOften := inst.DeepCopy()
	tooOften.ObjectMeta = metav1.ObjectMeta{Name: "often", Namespace: "apps"}
	tooOften.Spec.Backup.Continuous = &v1alpha1.ContinuousArchiving{ArchiveTimeout: &metav1.Duration{Duration: time.Second}}
	if err := c.Create(ctx, tooOften); err == nil || !strings.Contains(err.Error(), "archiveTimeout must be between 10s and 1h") {
		t.Fatalf("an archiveTimeout of 1s: %v", err)
	}

	key := types.NamespacedName{Namespace: "apps", Name: "ledger"}
	refused := func(reason, message string) {
		t.Helper()
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, key, inst); err != nil {
				return err
			}
			ready := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionReady)
			archiving := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionContinuousArchiving)
			if ready == nil || ready.Reason != reason || !strings.Contains(ready.Message, message) ||
				archiving == nil || archiving.Status != metav1.ConditionFalse || archiving.Reason != reason {
				return testenv.Errorf("Ready %+v, ContinuousArchiving %+v", ready, archiving)
			}
			return nil
		})
	}
	refused(instance.ReasonArchiveStoreMissing, `the BackupStore "minio" does not exist`)
	if err := c.Get(ctx, key, &appsv1.StatefulSet{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a StatefulSet without its archive's store: %v", err)
	}

	// A store on each pod's own disk cannot hold a fleet's archive.
	local := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: "apps"}, Spec: v1alpha1.BackupStoreSpec{URL: "file:///tmp/archive"}}
	if err := c.Create(ctx, local); err != nil {
		t.Fatal(err)
	}
	refused(instance.ReasonArchiveStoreNotShare, `the BackupStore "minio" is not an object store the pods can reach`)
	if err := c.Delete(ctx, local); err != nil {
		t.Fatal(err)
	}

	s3 := &v1alpha1.BackupStore{ObjectMeta: metav1.ObjectMeta{Name: "minio", Namespace: "apps"}, Spec: v1alpha1.BackupStoreSpec{
		URL: "s3://backups?endpoint=http://minio.storage.svc:9000&use_path_style=true&region=us-east-1", Prefix: "team-a",
		CredentialsSecretRef: &v1alpha1.LocalObjectReference{Name: "store-credentials"},
		Encryption:           &v1alpha1.BackupEncryption{KeySecretRef: v1alpha1.SecretKeyReference{Name: "backup-key", Key: "key"}},
	}}
	testenv.Eventually(t, time.Minute, func() error { return c.Create(ctx, s3) })
	var sts appsv1.StatefulSet
	testenv.Eventually(t, time.Minute, func() error { return c.Get(ctx, key, &sts) })
	pod := sts.Spec.Template.Spec
	for _, want := range []struct{ volume, source string }{
		{"archive-config", "ledger-archive"}, {"archive-credentials", "store-credentials"}, {"archive-key", "backup-key"},
	} {
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == want.volume && (v.ConfigMap != nil && v.ConfigMap.Name == want.source || v.Secret != nil && v.Secret.SecretName == want.source)
		}) {
			t.Errorf("the pods do not mount %s as %s: %+v", want.source, want.volume, pod.Volumes)
		}
	}
	if args := pod.Containers[0].Args; !slices.Contains(args, "--archive-config=/datafleet/archive/config/segments.json") {
		t.Errorf("the agent is not told of its archive: %v", args)
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "ledger-archive"}, &cm); err != nil {
		t.Fatal(err)
	}
	var cfg backup.SegmentConfig
	if err := json.Unmarshal([]byte(cm.Data["segments.json"]), &cfg); err != nil || cfg.URL != s3.Spec.URL || cfg.Prefix != "team-a" ||
		cfg.Dir != "wal/apps/ledger" || cfg.CredentialsDir == "" || cfg.KeyFile == "" {
		t.Fatalf("the archive's configuration: %+v (%v)", cfg, err)
	}
	var params corev1.ConfigMap
	if err := c.Get(ctx, types.NamespacedName{Namespace: "apps", Name: "ledger-config"}, &params); err != nil ||
		!strings.Contains(params.Data["parameters.conf"], "archive_timeout = '60s'") {
		t.Fatalf("archive_timeout in the parameters: %v %q", err, params.Data)
	}
	// No agent answers here: the condition waits for a primary to report its archiver.
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		archiving := meta.FindStatusCondition(inst.Status.Conditions, v1alpha1.ConditionContinuousArchiving)
		if archiving == nil || archiving.Status != metav1.ConditionUnknown || archiving.Reason != instance.ReasonArchiveWaiting {
			return fmt.Errorf("ContinuousArchiving %+v", archiving)
		}
		return nil
	})
	if inst.Status.RecoverableWindow != nil {
		t.Fatalf("a recoverable window without a physical backup: %+v", inst.Status.RecoverableWindow)
	}

	// A physical Backup completes (as its Job would have it): the window starts there; a logical
	// one does not count. (Its end is the primary's last archived segment: no agent answers here.)
	completed := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	for _, b := range []*v1alpha1.Backup{
		{ObjectMeta: metav1.ObjectMeta{Name: "ledger-dump", Namespace: "apps"}, Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "ledger"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ledger-base", Namespace: "apps"}, Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "ledger"},
			Method: v1alpha1.BackupPhysical}},
	} {
		if err := c.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		at := completed
		if b.Spec.Method != v1alpha1.BackupPhysical {
			at = metav1.NewTime(completed.Add(-time.Hour)) // older, but not a base backup
		}
		testenv.Eventually(t, time.Minute, func() error {
			if err := c.Get(ctx, client.ObjectKeyFromObject(b), b); err != nil {
				return err
			}
			b.Status = v1alpha1.BackupStatus{RunStatus: v1alpha1.RunStatus{Phase: v1alpha1.BackupCompleted, StartTime: &at, CompletionTime: &at}, Store: "minio"}
			return c.Status().Update(ctx, b)
		})
	}
	testenv.Eventually(t, time.Minute, func() error {
		if err := c.Get(ctx, key, inst); err != nil {
			return err
		}
		if w := inst.Status.RecoverableWindow; w == nil || !w.From.Equal(&completed) || !w.To.Equal(&completed) {
			return fmt.Errorf("recoverable window %+v, want from and to %s", w, completed)
		}
		return nil
	})
}
