package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"gocloud.dev/gcerrors"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// storeCallTimeout bounds what the operator itself does with a store (a probe, a manifest read,
// deleting a backup's objects): a store that answers slowly, or never, holds one reconcile that
// long and no more. The data itself moves in Jobs, with their own deadlines.
const storeCallTimeout = 30 * time.Second

// maxBackupObjects is how many objects a backup's directory may list when it is deleted: a
// backup writes three, and a store that lists without end must not fill the operator's memory.
const maxBackupObjects = 1000

// openStore opens a BackupStore for the operator's own calls, if the platform's policy allows it,
// with its credentials Secret read from the API server: the cache holds only Secrets the operator
// labelled.
func openStore(ctx context.Context, r client.Reader, bs *v1alpha1.BackupStore, policy store.Policy) (*store.Store, string, error) {
	if err := policy.Check(bs.Spec.URL, bs.Spec.CredentialsSecretRef != nil); err != nil {
		return nil, ReasonStoreNotAllowed, err
	}
	creds, reason, err := storeCredentials(ctx, r, bs)
	if err != nil {
		return nil, reason, err
	}
	st, err := store.Open(ctx, bs.Spec.URL, bs.Spec.Prefix, creds)
	if err != nil {
		return nil, "OpenFailed", err
	}
	return st, "", nil
}

// storeCredentials reads the store's credentials Secret, nil when it names none, from r (the API
// server: the cache holds only Secrets the operator labelled); on an error, its reason.
func storeCredentials(ctx context.Context, r client.Reader, bs *v1alpha1.BackupStore) (map[string][]byte, string, error) {
	ref := bs.Spec.CredentialsSecretRef
	if ref == nil {
		return nil, "", nil
	}
	s := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: bs.Namespace, Name: ref.Name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, ReasonCredentialsMissing, fmt.Errorf("the credentials Secret %q does not exist", ref.Name)
		}
		return nil, "CredentialsUnreadable", err
	}
	if s.Data == nil { // named, though empty: never the operator's own identity (store.Open)
		return map[string][]byte{}, "", nil
	}
	return s.Data, "", nil
}

// storeKey reads the store's encryption key, nil when it has none: the operator authenticates
// a manifest with it (backup.Authenticate) before it believes anything the manifest says.
func storeKey(ctx context.Context, r client.Reader, bs *v1alpha1.BackupStore) ([]byte, error) {
	e := bs.Spec.Encryption
	if e == nil {
		return nil, nil
	}
	s := &corev1.Secret{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: bs.Namespace, Name: e.KeySecretRef.Name}, s); err != nil {
		return nil, fmt.Errorf("the encryption key Secret %q: %w", e.KeySecretRef.Name, err)
	}
	key := s.Data[e.KeySecretRef.Key]
	if len(key) == 0 {
		return nil, fmt.Errorf("the encryption key Secret %q has no key %q", e.KeySecretRef.Name, e.KeySecretRef.Key)
	}
	return key, nil
}

// readManifest reads a backup's manifest and authenticates it with the store's key.
func readManifest(ctx context.Context, r client.Reader, st *store.Store, bs *v1alpha1.BackupStore, dir string) (backup.Manifest, error) {
	m, err := backup.ReadManifest(ctx, st, dir)
	if err != nil {
		return m, err
	}
	key, err := storeKey(ctx, r, bs)
	if err != nil {
		return m, err
	}
	return m, backup.Authenticate(m, key)
}

// backupStore is the store a Backup was written to (status.store, from its Job's start), else
// the one it names or its instance's default: a Backup outlives its instance and its instance's
// settings (review M4).
func backupStore(b *v1alpha1.Backup, inst *v1alpha1.ServiceInstance) string {
	if b.Status.Store != "" {
		return b.Status.Store
	}
	return storeOf(b.Spec.StoreRef, inst)
}

// storeOf is the store a Backup or plan names, else the instance's default.
func storeOf(ref *v1alpha1.LocalObjectReference, inst *v1alpha1.ServiceInstance) string {
	if ref != nil {
		return ref.Name
	}
	if inst.Spec.Backup != nil && inst.Spec.Backup.StoreRef != nil {
		return inst.Spec.Backup.StoreRef.Name
	}
	return ""
}

func redact(s string) string { return strings.TrimSpace(store.Redact(s)) }

func isNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }
