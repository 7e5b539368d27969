package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/agent/agentruntime"
)

// Physical base backups and what a point-in-time recovery starts from (issue #27). A base backup
// is pg_basebackup's tar of the data directory without WAL: the segment archive has the WAL, and
// a recovery replays it from the backup's checkpoint to its target.

var _ fwagent.BaseBackuper = (*Engine)(nil)

// BaseBackup implements fwagent.BaseBackuper: it streams a base backup of this member to w, a tar
// of its data directory taken with an immediate checkpoint, over the pod-local socket as the
// superuser (pg_hba's replication line for it). On a replica, PostgreSQL takes it from the
// replica's files. Where a restore's replay starts is read from the backup_label as it streams by.
func (e *Engine) BaseBackup(ctx context.Context, w io.Writer) (fwagent.BaseBackupInfo, error) {
	info := fwagent.BaseBackupInfo{Member: e.Config.Name, Started: time.Now().UTC()}
	system, err := systemIdentifier(e.Config.DataDir)
	if err != nil {
		return info, err
	}
	info.System = strconv.FormatUint(system, 10)
	if st := e.Status(ctx); st.Ready {
		info.Role = st.Role
	}
	cmd := e.command(ctx, "pg_basebackup", "--pgdata", "-", "--format", "tar", "--wal-method", "none",
		"--checkpoint", "fast", "--no-manifest", "--no-password",
		"--dbname", fmt.Sprintf("host='%s' port=%d user=%s", e.Config.SocketDir, e.Config.Port, Superuser))
	label := &labelReader{}
	pr, pw := io.Pipe()
	read := make(chan struct{})
	go func() {
		defer close(read)
		label.read(pr)
	}()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(w, pw), &stderr
	err = cmd.Run()
	pw.Close()
	<-read
	if err != nil {
		return info, fmt.Errorf("pg_basebackup: %w: %s", err, toolErrors(stderr.Bytes()))
	}
	if info.StartSegment, err = startSegment(label.label); err != nil {
		return info, err
	}
	info.Completed = time.Now().UTC()
	return info, nil
}

// maxLabelBytes bounds the backup_label kept from the stream (a few hundred bytes in practice).
const maxLabelBytes = 64 << 10

// labelReader picks the backup_label out of a base backup's tar as it streams by, and reads the
// rest to its end so the stream never waits for it.
type labelReader struct{ label []byte }

func (l *labelReader) read(r io.Reader) {
	defer io.Copy(io.Discard, r)
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return
		}
		if path.Clean(h.Name) == "backup_label" && h.Size <= maxLabelBytes {
			if l.label, err = io.ReadAll(io.LimitReader(tr, maxLabelBytes)); err != nil {
				return
			}
		}
	}
}

// UnpackBaseBackup writes the base backup r holds into dataDir, which must not exist, owned as
// the server's processes run. The archive comes from a store and is not trusted: only directories
// and regular files are written, every path stays inside dataDir, and a tablespace's link (which
// would point elsewhere on the machine) is refused.
func UnpackBaseBackup(r io.Reader, dataDir string, e *Engine) error {
	if _, err := os.Lstat(dataDir); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s exists: a base backup is unpacked into a new directory", dataDir)
	}
	if err := e.mkdir(dataDir); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the base backup: %w", err)
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("the base backup names %q, outside the data directory", h.Name)
		}
		path := filepath.Join(dataDir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if name != "." {
				if err := e.mkdir(path); err != nil {
					return err
				}
			}
		case tar.TypeReg:
			if err := e.unpackFile(path, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			return fmt.Errorf("the base backup holds a link (%s -> %s): tablespaces are not restored", h.Name, h.Linkname)
		default:
			return fmt.Errorf("the base backup holds %s, of a kind a data directory has not (%c)", h.Name, h.Typeflag)
		}
	}
}

func (e *Engine) unpackFile(path string, r io.Reader) error {
	if err := e.mkdir(filepath.Dir(path)); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return agentruntime.Chown(path, e.Config.Credential)
}

// RecoveryTarget is where a point-in-time recovery stops: a time (PostgreSQL's timestamptz
// syntax) or a log position (LSN), or the end of the archive when both are empty; on Timeline
// (CheckWALChain's), or PostgreSQL's newest when it is 0.
type RecoveryTarget struct {
	Time, LSN string
	Timeline  uint64
}

// PrepareRecovery makes an unpacked base backup recover from the archive when it starts: WAL
// comes through restoreCommand (the segment archive's fetch), replay stops at target, and the
// server is promoted there, on a new timeline.
func PrepareRecovery(dataDir, restoreCommand string, target RecoveryTarget, e *Engine) error {
	settings := "\n" + recoveryMarker + "\nrestore_command = " + quoteSetting(restoreCommand) + "\n"
	switch {
	case target.Time != "":
		settings += "recovery_target_time = " + quoteSetting(target.Time) + "\nrecovery_target_action = 'promote'\n"
	case target.LSN != "":
		settings += "recovery_target_lsn = " + quoteSetting(target.LSN) + "\nrecovery_target_action = 'promote'\n"
	}
	if target.Timeline != 0 {
		settings += "recovery_target_timeline = '" + strconv.FormatUint(target.Timeline, 10) + "'\n"
	}
	auto := filepath.Join(dataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(auto)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := agentruntime.WriteFileOwned(auto, append(old, settings...), 0o600, e.Config.Credential); err != nil {
		return err
	}
	// A base backup taken from a replica carries its standby.signal (pg_basebackup copies it), and
	// standby mode wins over recovery.signal: the copy would never promote, and would follow the
	// source's primary if it could reach it. The agent of a pod sets the signal by its role before
	// postgres starts; anything else recovering a backup starts from this.
	if err := os.Remove(filepath.Join(dataDir, standbySignal)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return agentruntime.WriteFileOwned(filepath.Join(dataDir, recoverySignal), nil, 0o600, e.Config.Credential)
}
