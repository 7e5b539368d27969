package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"time"
)

// RecoveryConfig is what a new instance's agent reads to build its data from a physical backup and
// the archived log after it (a point-in-time restore), a JSON file in the pod beside the mounted
// Secrets it names: the store and the source instance's archive as for the segment command
// (Dir is the archive's directory, without the system), the backup's directory, and the target.
type RecoveryConfig struct {
	SegmentConfig
	// Backup is the physical backup's directory under the store's prefix.
	Backup string `json:"backup"`
	// TargetTime is where replay stops (RFC 3339), or TargetLSN (the engine's log position);
	// neither: the end of the archive.
	TargetTime string `json:"targetTime,omitempty"`
	TargetLSN  string `json:"targetLSN,omitempty"`
	// TargetArchived says the source's recoverable window reached TargetTime when the restore
	// began: the archive holds every transaction up to it, so an archive that ends before its
	// next transaction after the target is the state at the target.
	TargetArchived bool `json:"targetArchived,omitempty"`
	// InPlace names an in-place restore (the Restore's UID): the members of an existing instance
	// replace their data with the recovery, once (each records it in its data directory); empty
	// for a new instance, whose first member recovers because it has no data.
	InPlace string `json:"inPlace,omitempty"`
}

// ReadRecoveryConfig reads a RecoveryConfig file.
func ReadRecoveryConfig(configFile string) (RecoveryConfig, error) {
	var c RecoveryConfig
	raw, err := readFileLimited(configFile)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("%s: %w", configFile, err)
	}
	return c, nil
}

// lsnPattern is a log position as PostgreSQL prints one (the API's pattern).
var lsnPattern = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)

// Recovery is an opened RecoveryConfig: the backup's authenticated manifest, and the archive of
// the backup's database system.
type Recovery struct {
	Config   RecoveryConfig
	Manifest Manifest
	Archive  *SegmentArchive
	Target   time.Time // zero: the end of the archive, or Config.TargetLSN (checked to be one)
}

// OpenRecovery reads a RecoveryConfig file and the backup's manifest, and refuses what cannot be
// recovered before anything is written: a manifest that does not authenticate with the store's
// key, a backup that is not physical, a target before the backup completed.
func OpenRecovery(ctx context.Context, configFile string) (*Recovery, error) {
	c, err := ReadRecoveryConfig(configFile)
	if err != nil {
		return nil, err
	}
	if c.Backup == "" {
		return nil, fmt.Errorf("%s names no backup", configFile)
	}
	r := &Recovery{Config: c}
	if c.TargetLSN != "" && (!lsnPattern.MatchString(c.TargetLSN) || c.TargetTime != "") {
		return nil, fmt.Errorf("the recovery target LSN %q: want one like 0/3000060, and no target time beside it", c.TargetLSN)
	}
	if c.TargetTime != "" {
		if r.Target, err = time.Parse(time.RFC3339Nano, c.TargetTime); err != nil {
			return nil, fmt.Errorf("the recovery target %q: %w", c.TargetTime, err)
		}
	}
	a, err := openSegmentArchive(ctx, c.SegmentConfig)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configFile, err)
	}
	m, err := ReadManifest(ctx, a.Store, c.Backup)
	if err == nil {
		err = Authenticate(m, a.Key)
	}
	switch {
	case err != nil:
	case m.Method != MethodPhysical || m.Base == nil:
		err = fmt.Errorf("the backup at %s is not a physical backup: a point-in-time restore starts from one", c.Backup)
	case !r.Target.IsZero() && r.Target.Before(m.Base.Completed):
		err = fmt.Errorf("the target %s is before the backup at %s was complete (%s): choose an earlier backup or a later target",
			r.Target.UTC().Format(time.RFC3339), c.Backup, m.Base.Completed.UTC().Format(time.RFC3339))
	}
	if err != nil {
		a.Store.Close()
		return nil, err
	}
	a.Dir = path.Join(a.Dir, m.Base.System)
	r.Manifest, r.Archive = m, a
	return r, nil
}

// Open streams the backup's data, checked against its manifest as it is read (to its end).
func (r *Recovery) Open(ctx context.Context) (io.ReadCloser, error) {
	return Open(ctx, r.Archive.Store, r.Config.Backup, r.Manifest, r.Archive.Key)
}

// Close releases the store.
func (r *Recovery) Close() error { return r.Archive.Store.Close() }
