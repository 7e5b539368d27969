package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A member the operator asked to remove is not wanted while the mounted members file still lists
// it (the kubelet updates it late), and is wanted again once a later list names it anew.
func TestRemovedMembersStayRemovedUntilTheFileCatchesUp(t *testing.T) {
	e := &Engine{Config: Config{ConfigDir: t.TempDir()}}
	write := func(hosts ...string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(e.Config.ConfigDir, MembersFile), []byte(strings.Join(hosts, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := func(hosts ...string) {
		t.Helper()
		got, err := e.wantedMembers()
		if err != nil || !slices.Equal(got, hosts) {
			t.Fatalf("wanted members %v (%v), want %v", got, err, hosts)
		}
	}
	write("db-0", "db-1", "db-2")
	e.removed = map[string]bool{"db-2": true, "db-1": true}
	want("db-0")
	write("db-0", "db-1") // the file dropped db-2 only
	want("db-0")
	write("db-0")
	want("db-0")
	write("db-0", "db-1", "db-2") // scaled up again later
	want("db-0", "db-1", "db-2")
}

// Only a data directory with nothing in it (but a new volume's lost+found) counts as fresh: a
// first member that has data never initiates a second replica set.
func TestOnlyAnEmptyDataDirectoryIsFresh(t *testing.T) {
	for name, files := range map[string][]string{"empty": nil, "new volume": {"lost+found"}, "data": {"lost+found", "WiredTiger"}} {
		dir := t.TempDir()
		for _, f := range files {
			if err := os.Mkdir(filepath.Join(dir, f), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		e := &Engine{Config: Config{DataDir: dir}}
		if err := e.markFresh(); err != nil {
			t.Fatal(err)
		}
		if fresh := e.fresh(); fresh != (name != "data") {
			t.Errorf("%s: fresh = %v", name, fresh)
		}
		// A restart of a member that initiated (or joined) finds the marker gone and data there.
		if err := os.Remove(filepath.Join(dir, freshMarker)); err == nil {
			if err := os.WriteFile(filepath.Join(dir, "WiredTiger"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := e.markFresh(); err != nil || e.fresh() {
				t.Errorf("%s: fresh again after a restart (%v)", name, err)
			}
		}
	}
}
