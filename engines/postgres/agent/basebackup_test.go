package agent

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
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
