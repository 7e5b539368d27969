package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/names"
)

// Import reasons and the condition a BackupStore with spec.importBackups reports them in.
const (
	ConditionImported       = "Imported"
	ReasonImportNotAllowed  = "ImportNotAllowed"
	ReasonImportListed      = "Listed"
	ReasonImportListFailed  = "ListFailed"
	ReasonImportMismatch    = "ManifestMismatch"
	ReasonImportUnreadable  = "ManifestUnreadable"
	LabelImportedFrom       = "datafleet.dev/imported-from"
	maxImportEntries        = 20000
	maxImportedPerReconcile = 200
)

// importBackups lists the store and creates a Backup for every backup in it that no Backup of
// the namespace names, and says what it did in the Imported condition. A manifest that does not
// authenticate with the store's key, or that does not describe the directory it is in, makes no
// Backup. The Backups are created whole (spec.import), so the Backup controller never takes
// one for a backup to run; it checks each again before it calls it Completed.
func (r *StoreReconciler) importBackups(ctx context.Context, bs *v1alpha1.BackupStore) (bool, string, string) {
	if err := r.Policy.ImportAllowed(bs.Namespace); err != nil {
		return false, ReasonImportNotAllowed, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 2*storeCallTimeout)
	defer cancel()
	st, reason, err := openStore(ctx, r.APIReader, bs, r.Policy)
	if err != nil {
		return false, reason, err.Error()
	}
	defer st.Close()
	dirs, listErr := backup.FindBackups(ctx, st, maxImportEntries)
	if listErr != nil && !errors.Is(listErr, backup.ErrTooMany) {
		return false, ReasonImportListFailed, stableMessage(redact(listErr.Error()))
	}
	// The namespace's Backups are listed after the store, from the API server: a Backup records
	// its directory (status.path) before its Job can write a manifest there.
	var list v1alpha1.BackupList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(bs.Namespace)); err != nil {
		return false, ReasonImportListFailed, err.Error()
	}
	named := map[string]bool{}
	taken := map[string]bool{}
	imported := 0
	for i := range list.Items {
		named[Dir(&list.Items[i])] = true
		taken[list.Items[i].Name] = true
		if list.Items[i].Labels[LabelImportedFrom] == bs.Name {
			imported++
		}
	}
	created, refused := 0, []string{}
	for _, dir := range dirs {
		if named[dir] {
			continue
		}
		if created == maxImportedPerReconcile {
			break // the rest at the next look
		}
		b, why := importedBackup(ctx, r, bs, st, dir, taken)
		if b == nil {
			refused = append(refused, why)
			continue
		}
		if err := r.Client.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, ReasonImportListFailed, fmt.Sprintf("creating Backup %q for %s: %v", b.Name, dir, err)
		}
		taken[b.Name] = true
		created++
	}
	bs.Status.Imported = int32(imported + created)
	msg := fmt.Sprintf("the store holds %d backups; %d Backups of this namespace were imported from it", len(dirs), imported+created)
	if listErr != nil {
		msg += "; " + listErr.Error()
	}
	if len(refused) > 0 {
		msg += fmt.Sprintf("; %d not imported, the first: %s", len(refused), refused[0])
	}
	return true, ReasonImportListed, msg
}

// importedBackup is the Backup for the backup in dir, or nil and why not.
func importedBackup(ctx context.Context, r *StoreReconciler, bs *v1alpha1.BackupStore, st *store.Store, dir string, taken map[string]bool) (*v1alpha1.Backup, string) {
	if !importPath.MatchString(dir) {
		return nil, fmt.Sprintf("%q: not a directory this operator writes (namespace/instance/backup in lower case)", dir)
	}
	m, err := readManifest(ctx, r.APIReader, st, bs, dir)
	if err != nil {
		return nil, fmt.Sprintf("%s: %v", dir, err)
	}
	if err := manifestDescribes(m, dir); err != nil {
		return nil, err.Error()
	}
	method := v1alpha1.BackupLogical
	if m.Method == backup.MethodPhysical {
		method = v1alpha1.BackupPhysical
	}
	return &v1alpha1.Backup{
		ObjectMeta: metav1.ObjectMeta{Name: importName(m.Backup, dir, taken), Namespace: bs.Namespace,
			Labels: map[string]string{LabelImportedFrom: bs.Name}},
		Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: m.Instance},
			StoreRef: &v1alpha1.LocalObjectReference{Name: bs.Name}, Method: method, Import: &v1alpha1.BackupImport{Path: dir}},
	}, ""
}

// manifestDescribes checks that an authenticated manifest is the one its directory says: a
// manifest copied to another directory (another instance's, say) is not imported as that one.
func manifestDescribes(m backup.Manifest, dir string) error {
	parts := strings.Split(dir, "/")
	if len(parts) != 3 || parts[0] != m.Namespace || parts[1] != m.Instance || !strings.HasPrefix(parts[2], m.Backup+"-") {
		return fmt.Errorf("%s: its manifest describes backup %s of %s/%s, which another directory holds", dir, m.Backup, m.Namespace, m.Instance)
	}
	return nil
}

// importPath is what the CRD allows in spec.import.path.
var importPath = regexp.MustCompile(`^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$`)

// importName is the original Backup's name when it is free in the namespace, else that name with
// a hash of the directory: the same backup always gets the same name.
func importName(original, dir string, taken map[string]bool) string {
	valid := len(validation.IsDNS1123Label(original)) == 0
	if valid && len(original) <= names.MaxStatefulSet && !taken[original] {
		return original
	}
	if !valid {
		original = "imported"
	}
	sum := sha256.Sum256([]byte(dir))
	return names.Child(original, hex.EncodeToString(sum[:4]), names.MaxStatefulSet)
}

// imported takes a Backup that stands for a backup already in the store (spec.import) to
// Completed once its manifest authenticates with the store's key and describes its directory,
// without a Job.
func (r *BackupReconciler) imported(ctx context.Context, b *v1alpha1.Backup, run run) (time.Duration, error) {
	if err := r.Policy.ImportAllowed(b.Namespace); err != nil {
		return run.fail(ReasonImportNotAllowed, err.Error())
	}
	bs, reason, msg := readyStore(ctx, r.Client, b.Namespace, b.Spec.StoreRef.Name)
	if bs == nil {
		return run.pending(reason, msg)
	}
	ctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	st, reason, err := openStore(ctx, r.APIReader, bs, r.Policy)
	if err != nil {
		return run.pending(reason, err.Error())
	}
	defer st.Close()
	dir := Dir(b)
	m, err := readManifest(ctx, r.APIReader, st, bs, dir)
	if err != nil {
		return run.fail(ReasonImportUnreadable, fmt.Sprintf("%s: %v", dir, err))
	}
	if err := manifestDescribes(m, dir); err != nil {
		return run.fail(ReasonImportMismatch, err.Error())
	}
	if m.Instance != b.Spec.InstanceRef.Name {
		return run.fail(ReasonImportMismatch, fmt.Sprintf("%s is a backup of instance %q; spec.instanceRef names %q", dir, m.Instance, b.Spec.InstanceRef.Name))
	}
	if (m.Method == backup.MethodPhysical) != (b.Spec.Method == v1alpha1.BackupPhysical) {
		return run.fail(ReasonImportMismatch, fmt.Sprintf("%s holds a %s backup; spec.method is %s", dir, m.Method, b.Spec.Method))
	}
	started, completed := metav1.NewTime(m.Started.Truncate(time.Second)), metav1.NewTime(m.Completed.Truncate(time.Second))
	run.succeed(fmt.Sprintf("imported from store %q: %d bytes (%d before compression) of %s %s, taken as %s of %s/%s",
		bs.Name, m.Size, m.RawSize, m.Engine, m.EngineVersion, m.Backup, m.Namespace, m.Instance))
	st2 := &b.Status
	st2.StartTime, st2.CompletionTime = &started, &completed
	st2.Store, st2.Path, st2.Location, st2.EngineVersion = bs.Name, dir, location(bs, dir), m.EngineVersion
	st2.SizeBytes, st2.SHA256, st2.Encrypted = m.Size, m.SHA256, m.Encryption != nil
	return 0, nil
}
