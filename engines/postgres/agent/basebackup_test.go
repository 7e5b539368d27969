package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A base backup comes from a store, which a tenant may write: an archive that names a path
// outside the data directory, or holds a link or a device, is refused and writes nothing outside.
func TestUnpackingABaseBackupStaysInItsDirectory(t *testing.T) {
	e := &Engine{}
	tarOf := func(entries ...tar.Header) *bytes.Buffer {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range entries {
			if h.Typeflag == tar.TypeReg {
				h.Size = int64(len("data"))
			}
			h.Mode = 0o600
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				_, _ = tw.Write([]byte("data"))
			}
		}
		tw.Close()
		return &b
	}
	root := t.TempDir()
	good := filepath.Join(root, "good")
	if err := UnpackBaseBackup(tarOf(tar.Header{Name: "./", Typeflag: tar.TypeDir}, tar.Header{Name: "base/1/", Typeflag: tar.TypeDir},
		tar.Header{Name: "base/1/1259", Typeflag: tar.TypeReg}, tar.Header{Name: "PG_VERSION", Typeflag: tar.TypeReg}), good, e); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(good, "base/1/1259")); err != nil || string(b) != "data" {
		t.Fatalf("unpacked file: %q %v", b, err)
	}
	if err := UnpackBaseBackup(tarOf(tar.Header{Name: "PG_VERSION", Typeflag: tar.TypeReg}), good, e); err == nil {
		t.Error("a base backup was unpacked over an existing directory")
	}
	for name, entry := range map[string]tar.Header{
		"parent":   {Name: "../escaped", Typeflag: tar.TypeReg},
		"nested":   {Name: "base/../../escaped", Typeflag: tar.TypeReg},
		"absolute": {Name: "/tmp/escaped", Typeflag: tar.TypeReg},
		"symlink":  {Name: "pg_tblspc/16384", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
		"hardlink": {Name: "hard", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"},
		"device":   {Name: "dev", Typeflag: tar.TypeChar},
	} {
		dir := filepath.Join(root, "bad-"+name)
		if err := UnpackBaseBackup(tarOf(entry), dir, e); err == nil {
			t.Errorf("%s: %q was unpacked", name, entry.Name)
		}
	}
	entries, _ := os.ReadDir(root)
	for _, en := range entries {
		if strings.Contains(en.Name(), "escaped") {
			t.Errorf("%s was written outside the data directory", en.Name())
		}
	}
	if _, err := os.Stat("/tmp/escaped"); err == nil {
		t.Error("/tmp/escaped was written")
	}
}

// A base backup taken from a replica through its agent's endpoint, as the backup Job takes it
// when the instance has one: the replica's copy of the primary's system, with its start in the
// log reported as its backup_label says, and the table the primary wrote in its files.
func TestABaseBackupFromAReplica(t *testing.T) {
	rs := newReplicaSet(t, 2, "")
	rs.start("pg-0")
	rs.waitRole("pg-0", "primary")
	rs.start("pg-1")
	rs.waitRole("pg-1", "replica")
	p, r := rs.members["pg-0"], rs.members["pg-1"]
	execSQL(t, p.e, "CREATE TABLE public.marker (id int)")
	rs.waitRow("pg-1", "SELECT count(*)::text FROM pg_catalog.pg_tables WHERE tablename = 'marker'", "1")

	var tarball bytes.Buffer
	info, err := r.r.agent().BaseBackup(context.Background(), &tarball)
	if err != nil {
		t.Fatal(err)
	}
	system, err := systemIdentifier(p.e.Config.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Role != "replica" || info.Member != "pg-1" || info.System != strconv.FormatUint(system, 10) {
		t.Fatalf("the base backup's info: %+v; want the replica pg-1's copy of system %d", info, system)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if err := UnpackBaseBackup(&tarball, restored, r.e); err != nil {
		t.Fatal(err)
	}
	if start, err := backupStartSegment(restored); err != nil || start != info.StartSegment {
		t.Fatalf("the backup_label starts at %s (%v); the agent said %s", start, err, info.StartSegment)
	}
	if label, _ := os.ReadFile(filepath.Join(restored, "backup_label")); !strings.Contains(string(label), "BACKUP FROM: standby") {
		t.Fatalf("the backup_label does not say it was taken from a standby:\n%s", label)
	}
	oid := query(t, p.e, "SELECT pg_relation_filepath('public.marker')")
	if _, err := os.Stat(filepath.Join(restored, oid)); err != nil {
		t.Fatalf("the primary's table is not in the replica's base backup: %v", err)
	}
}
