package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
)

// Reading ahead. A recovery asks for one segment at a time (PostgreSQL's restore_command) and
// replays it before it asks for the next, so each segment's fetch (the process, the store's
// latency, decryption, decompression, the checksum) adds to the recovery's time: a restore
// through the store took twice as long as replaying the same segments from a local directory
// (`make bench-pitr`). A fetch with --read-ahead N brings the segment asked for and the N after
// it at the same time, the followers into a spool directory, each complete and verified (Get)
// before it is renamed into place; the next N fetches each find theirs there and only rename it.
// Nothing outlives the command: it returns once all are in (a follower that is not in the archive,
// past its end or on another timeline, is no error; the fetch asked for answers for itself). The
// spool holds only what this process wrote and verified; the recovery's owner removes it with the
// recovery.

// maxReadAhead bounds the followers fetched at once (each up to a segment in memory-free
// streaming, but a connection and a core's share).
const maxReadAhead = 16

// followers are the n segments after name, by order.
func followers(name string, n int, order SegmentOrder) []string {
	var out []string
	for next := name; len(out) < n; {
		if next = order(next); next == "" {
			break
		}
		out = append(out, next)
	}
	return out
}

// readAhead writes the segment named name to file, from the spool when an earlier fetch read it
// ahead, and otherwise from the archive together with the followers missing from the spool.
func readAhead(ctx context.Context, a *SegmentArchive, name, file, spool string, next []string) error {
	if err := os.Rename(filepath.Join(spool, name), file); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		// (A spool that cannot be renamed from costs the read-ahead, not the fetch.)
		return fetchSegment(ctx, a, name, file)
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, n := range next {
		if _, err := os.Stat(filepath.Join(spool, n)); err == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A follower that fails is fetched again when it is asked for, and says why then.
			_ = fetchSegment(ctx, a, n, filepath.Join(spool, n))
		}()
	}
	err := fetchSegment(ctx, a, name, file)
	wg.Wait()
	return err
}
