package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The segment command's fetch as a recovery runs it, against a real MinIO: a segment in the
// archive comes back whole; past the archive's end the segment is missing (exit status 1:
// PostgreSQL's end of the archive), and a store out of reach or a configuration that cannot be
// read is another failure (128: PostgreSQL stops the recovery instead of ending it short of what
// the archive holds).
func TestTheSegmentFetchTellsMissingFromFailed(t *testing.T) {
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	dir := t.TempDir()
	creds := m.CredentialsDir(t, dir)
	config := func(url string) string {
		b, _ := json.Marshal(backup.SegmentConfig{URL: url, Prefix: "team-a", Dir: "orders/wal", CredentialsDir: creds})
		f := filepath.Join(dir, fmt.Sprintf("config-%d.json", len(url)))
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	good := config(m.URL())
	a, err := backup.OpenSegmentArchive(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Store.Close()
	const segment = "000000010000000000000001"
	content := randomBytes(1<<20 + 7)
	if err := a.Put(ctx, segment, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "RECOVERYXLOG")
	fetch := func(config, name string) error {
		return backup.SegmentsMain(ctx, []string{"fetch", "--config", config, name, file})
	}
	if err := fetch(good, segment); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("fetched %s: %d bytes (%v), want its %d", segment, len(got), err, len(content))
	}
	err = fetch(good, "000000010000000000000002")
	if !backup.IsSegmentMissing(err) || backup.ExitCode(err) != 1 {
		t.Fatalf("past the archive's end: %v (exit status %d), want the segment missing, 1", err, backup.ExitCode(err))
	}
	if err := fetch(config("s3://backups?endpoint=http://127.0.0.1:1&use_path_style=true&region=us-east-1"), segment); err == nil || backup.ExitCode(err) != 128 {
		t.Fatalf("with the store out of reach: %v (exit status %d), want 128", err, backup.ExitCode(err))
	}
	if err := fetch(filepath.Join(dir, "no-such-config.json"), segment); err == nil || backup.ExitCode(err) != 128 {
		t.Fatalf("without its configuration: %v (exit status %d), want 128", err, backup.ExitCode(err))
	}
}

// The credentials directory of a recovery is the recovery Secret's volume, which also holds its
// configuration and key: only the keys a store reads are credentials. With the store's keys there
// the archive opens; with none (a named Secret that lacks them) it is refused, naming the keys,
// never opened with the pod's ambient credentials.
func TestOnlyStoreKeysAreCredentials(t *testing.T) {
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	for name, withKeys := range map[string]bool{"recovery": true, "no-keys": false} {
		dir := filepath.Join(t.TempDir(), name)
		creds := filepath.Join(dir, "credentials")
		if withKeys {
			creds = m.CredentialsDir(t, dir)
		} else if err := os.MkdirAll(creds, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(creds, "recovery.json"), []byte(`{"backup":"b"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(backup.SegmentConfig{URL: m.URL(), Prefix: "team-a", Dir: "orders/wal", CredentialsDir: creds})
		config := filepath.Join(dir, "config.json")
		if err := os.WriteFile(config, b, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := backup.OpenSegmentArchive(ctx, config)
		if withKeys {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			a.Store.Close()
		} else if err == nil || !strings.Contains(err.Error(), "needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") {
			t.Errorf("%s: %v, want the missing keys named", name, err)
		}
	}
}
