package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
