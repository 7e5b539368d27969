package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// The segment command's fetch as a recovery runs it, against a real MinIO: with --read-ahead it
// brings the segments after the one asked for into the spool, complete, and the next fetches take
// theirs from there (proven by removing them from the store first); past the archive's end it
// says the segment is missing (exit status 1: PostgreSQL's end of the archive), and a store out
// of reach is another failure (128: PostgreSQL stops the recovery instead of ending it short).
func TestTheSegmentFetchReadsAhead(t *testing.T) {
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.Mkdir(creds, 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range m.Credentials() {
		if err := os.WriteFile(filepath.Join(creds, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
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
	// Segments "s01" to "s05" in a toy order (s01, s02, ...).
	name := func(i int) string { return fmt.Sprintf("s%02d", i) }
	order := func(n string) string {
		i, err := strconv.Atoi(n[1:])
		if err != nil || n[0] != 's' {
			return ""
		}
		return name(i + 1)
	}
	content := map[string][]byte{}
	for i := 1; i <= 5; i++ {
		content[name(i)] = randomBytes(1<<20 + i)
		if err := a.Put(ctx, name(i), bytes.NewReader(content[name(i)])); err != nil {
			t.Fatal(err)
		}
	}
	spool, wal := filepath.Join(dir, "spool"), filepath.Join(dir, "pg_wal")
	if err := os.Mkdir(wal, 0o755); err != nil {
		t.Fatal(err)
	}
	fetch := func(config, segment string) error {
		return backup.SegmentsMain(ctx, []string{"fetch", "--config", config, "--read-ahead", "3", "--spool", spool,
			segment, filepath.Join(wal, "RECOVERYXLOG")}, order)
	}
	fetched := func(segment string) {
		t.Helper()
		if got, err := os.ReadFile(filepath.Join(wal, "RECOVERYXLOG")); err != nil || !bytes.Equal(got, content[segment]) {
			t.Fatalf("fetched %s: %d bytes (%v), want its %d", segment, len(got), err, len(content[segment]))
		}
	}
	spooled := func(want ...string) {
		t.Helper()
		entries, _ := os.ReadDir(spool)
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("the spool holds %v, want %v", got, want)
		}
	}
	if err := fetch(good, name(1)); err != nil {
		t.Fatal(err)
	}
	fetched(name(1))
	spooled(name(2), name(3), name(4))
	// From the spool: the store no longer has them.
	for i := 2; i <= 4; i++ {
		if err := a.Delete(ctx, name(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 2; i <= 4; i++ {
		if err := fetch(good, name(i)); err != nil {
			t.Fatalf("fetching %s from the spool: %v", name(i), err)
		}
		fetched(name(i))
	}
	spooled()
	// s05 from the store; its followers are past the archive's end: no error, nothing spooled.
	if err := fetch(good, name(5)); err != nil {
		t.Fatal(err)
	}
	fetched(name(5))
	spooled()
	err = fetch(good, name(6))
	if !backup.IsSegmentMissing(err) || backup.ExitCode(err) != 1 {
		t.Fatalf("past the archive's end: %v (exit status %d), want the segment missing, 1", err, backup.ExitCode(err))
	}
	if err := fetch(config("s3://backups?endpoint=http://127.0.0.1:1&use_path_style=true&region=us-east-1"), name(5)); err == nil || backup.ExitCode(err) != 128 {
		t.Fatalf("with the store out of reach: %v (exit status %d), want 128", err, backup.ExitCode(err))
	}
}
