package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
)

// A new Backup's directory says what and when, without the UID only its cluster knows; one
// started by an earlier operator is read where it was written (its UID), one whose Job started
// where status.path says, and an imported one where its spec says, with its archive in the
// namespace of the cluster that took it.
func TestBackupDirectories(t *testing.T) {
	created := metav1.NewTime(time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC))
	b := func(st v1alpha1.BackupStatus, imp *v1alpha1.BackupImport) *v1alpha1.Backup {
		return &v1alpha1.Backup{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "shop", UID: types.UID("0123456789abcdef"), CreationTimestamp: created},
			Spec: v1alpha1.BackupSpec{InstanceRef: v1alpha1.LocalObjectReference{Name: "orders"}, Import: imp}, Status: st}
	}
	for _, c := range []struct {
		why          string
		b            *v1alpha1.Backup
		dir, archive string
	}{
		{"not started", b(v1alpha1.BackupStatus{}, nil), "shop/orders/nightly-20261206-010203", "wal/shop/orders"},
		{"started", b(v1alpha1.BackupStatus{Path: "shop/orders/nightly-20261206-010203", Location: "s3://x/shop/orders/nightly-20261206-010203/manifest.json"}, nil),
			"shop/orders/nightly-20261206-010203", "wal/shop/orders"},
		{"started by an earlier operator", b(v1alpha1.BackupStatus{Location: "s3://x/shop/orders/nightly-01234567/manifest.json"}, nil),
			"shop/orders/nightly-01234567", "wal/shop/orders"},
		{"imported", b(v1alpha1.BackupStatus{}, &v1alpha1.BackupImport{Path: "prod/orders/nightly-20261201-000000"}),
			"prod/orders/nightly-20261201-000000", "wal/prod/orders"},
	} {
		if got := Dir(c.b); got != c.dir {
			t.Errorf("%s: Dir %q, want %q", c.why, got, c.dir)
		}
		if got := archiveDir(c.b); got != c.archive {
			t.Errorf("%s: archive %q, want %q", c.why, got, c.archive)
		}
	}
}
