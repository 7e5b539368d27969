package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"gocloud.dev/blob"

	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// archiveTop is the store's top-level directory of continuous archives (engine.ArchiveDir),
// which holds no backups.
const archiveTop = "wal"

// ErrTooMany is FindBackups' error when the store lists more entries than it may look at.
var ErrTooMany = errors.New("the store lists more entries than one look reads")

// FindBackups lists the directories of the backups a store holds under its prefix:
// namespace/instance/backup, each with a manifest, in the store's order, looking at no more than
// max entries in all (a store that lists without end must not fill the operator's memory; what
// it found by then is returned with ErrTooMany). Nothing is read but the listing: the manifests
// are for the caller to read and authenticate.
func FindBackups(ctx context.Context, s *store.Store, max int) ([]string, error) {
	seen := 0
	var found []string
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		prefix := s.Key(dir) + "/"
		if dir == "" {
			prefix = strings.TrimPrefix(s.Key("")+"/", "/")
		}
		it := s.Bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
		for {
			obj, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if seen++; seen > max {
				return ErrTooMany
			}
			name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, prefix), "/")
			switch {
			case depth == 3 && !obj.IsDir && name == ManifestName:
				found = append(found, dir)
			case depth < 3 && obj.IsDir && name != "" && !(depth == 0 && name == archiveTop):
				if err := walk(path.Join(dir, name), depth+1); err != nil {
					return err
				}
			}
		}
	}
	if err := walk("", 0); err != nil {
		if errors.Is(err, ErrTooMany) {
			return found, fmt.Errorf("%w (%d): the backups found before are listed", err, max)
		}
		return found, err
	}
	return found, nil
}
