package backup_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"gocloud.dev/blob"

	"github.com/datafleet-dev/datafleet/framework/backup"
)

// A segment archive on a real MinIO and a directory, with and without a key: segments come back
// as they were put; putting one again is harmless and a different one under its name is refused,
// leaving the first; an object copied under another segment's name, altered, read with the wrong
// key or named outside the pattern is refused.
func TestSegmentArchive(t *testing.T) {
	ctx := context.Background()
	first, second := randomBytes(3<<20+17), randomBytes(1<<20)
	for storeName, s := range stores(t) {
		for _, key := range [][]byte{nil, []byte("0123456789abcdefghijklmnopqrstuvwxyzABCD")} {
			t.Run(storeName+map[bool]string{true: "/encrypted", false: "/plain"}[key != nil], func(t *testing.T) {
				a := &backup.SegmentArchive{Store: s, Dir: "orders/wal-" + map[bool]string{true: "enc", false: "plain"}[key != nil], Key: key}
				get := func(name string) ([]byte, error) {
					var b bytes.Buffer
					err := a.Get(ctx, name, &b)
					return b.Bytes(), err
				}
				const one, two = "000000010000000000000001", "000000010000000000000002"
				for _, p := range []struct {
					name string
					data []byte
				}{{one, first}, {two, second}, {one, first}} { // the second put of one is a retry
					if err := a.Put(ctx, p.name, bytes.NewReader(p.data)); err != nil {
						t.Fatalf("put %s: %v", p.name, err)
					}
				}
				if got, err := get(one); err != nil || !bytes.Equal(got, first) {
					t.Fatalf("get %s: %v (%d bytes, want %d)", one, err, len(got), len(first))
				}
				if err := a.Put(ctx, one, bytes.NewReader(second)); !errors.Is(err, backup.ErrSegmentConflict) {
					t.Fatalf("another segment under %s: %v, want a conflict", one, err)
				}
				if got, err := get(one); err != nil || !bytes.Equal(got, first) {
					t.Fatalf("after the refused conflict, %s: %v", one, err)
				}
				if names, err := a.List(ctx); err != nil || !slices.Equal(names, []string{one, two}) {
					t.Fatalf("list: %v %v", names, err)
				}
				if _, err := get("000000010000000000000003"); !backup.IsSegmentMissing(err) {
					t.Errorf("a segment never archived: %v", err)
				}
				for _, bad := range []string{"", "../x", "a/b", "x..y", strings.Repeat("a", 129)} {
					if err := a.Put(ctx, bad, bytes.NewReader(first)); err == nil {
						t.Errorf("segment name %q accepted", bad)
					}
				}

				// The object of two, copied with its metadata under a third name, is not that segment.
				suffix := ".gz"
				if key != nil {
					suffix += ".enc"
				}
				objKey := func(name string) string { return s.Key(a.Dir, name+suffix) }
				if err := s.Bucket.Copy(ctx, objKey("000000010000000000000009"), objKey(two), nil); err != nil {
					t.Fatal(err)
				}
				if _, err := get("000000010000000000000009"); !errors.Is(err, backup.ErrCorrupt) {
					t.Errorf("a segment copied under another name was read: %v", err)
				}
				// An altered object is refused.
				attrs, err := s.Bucket.Attributes(ctx, objKey(two))
				if err != nil {
					t.Fatal(err)
				}
				stored, err := s.Bucket.ReadAll(ctx, objKey(two))
				if err != nil {
					t.Fatal(err)
				}
				stored[len(stored)/2] ^= 1
				if err := s.Bucket.WriteAll(ctx, objKey(two), stored, &blob.WriterOptions{Metadata: attrs.Metadata}); err != nil {
					t.Fatal(err)
				}
				if _, err := get(two); err == nil {
					t.Error("an altered segment was read")
				}
				if key != nil {
					wrong := &backup.SegmentArchive{Store: s, Dir: a.Dir, Key: []byte("another key, long enough to be a key!!!!")}
					if err := wrong.Get(ctx, one, &bytes.Buffer{}); !errors.Is(err, backup.ErrWrongKey) {
						t.Errorf("read with the wrong key: %v", err)
					}
					keyless := &backup.SegmentArchive{Store: s, Dir: a.Dir}
					if err := keyless.Get(ctx, one, &bytes.Buffer{}); !errors.Is(err, backup.ErrWrongKey) {
						t.Errorf("read without the key: %v", err)
					}
				}
			})
		}
	}
}
