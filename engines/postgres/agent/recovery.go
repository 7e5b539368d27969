package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/backup"
)

// A new instance restored to a point in time (Config.Recovery) builds its first primary's data
// from a physical backup and the archived log instead of initdb: the backup is unpacked (checked
// against its manifest as it is read), the archive is checked to hold every segment the replay
// needs, and PostgreSQL starts in recovery with the segment archive's fetch as restore_command,
// stops at the target and promotes itself there, on a new timeline. Any failure removes what was
// unpacked, so that the next start tries again from the store rather than from half a copy.

// recoverFromStore builds the data directory from the recovery's backup and archive.
func (e *Engine) recoverFromStore(ctx context.Context) (err error) {
	r, err := backup.OpenRecovery(ctx, e.Config.Recovery)
	if err != nil {
		return fmt.Errorf("point-in-time restore: %w", err)
	}
	defer r.Close()
	defer func() {
		if err != nil {
			if rmErr := os.RemoveAll(e.Config.DataDir); rmErr != nil {
				err = errors.Join(err, rmErr)
			}
			err = fmt.Errorf("point-in-time restore from %s: %w", r.Config.Backup, err)
		}
	}()
	data, err := r.Open(ctx)
	if err != nil {
		return err
	}
	defer data.Close()
	if err := UnpackBaseBackup(data, e.Config.DataDir, e); err != nil {
		return err
	}
	// The checksum is verified at the data's end, past the tar's own.
	if _, err := io.Copy(io.Discard, data); err != nil {
		return err
	}
	if err := e.sameMajorVersion(); err != nil {
		return err
	}
	chain, err := CheckWALChain(ctx, r.Archive, e.Config.DataDir, WALSegmentSize)
	if err != nil {
		return err
	}
	manager, err := e.manager()
	if err != nil {
		return err
	}
	fetch := segmentCommand(manager, "fetch", e.Config.Recovery, r.Manifest.Base.System)
	target := RecoveryTarget{LSN: r.Config.TargetLSN, Timeline: chain.Timeline}
	stop := r.Target
	if !stop.IsZero() && r.Config.TargetArchived {
		if stop, err = e.recoveryStop(ctx, r.Archive, chain, r.Target); err != nil {
			return err
		}
		if stop.IsZero() {
			log.FromContext(ctx).Info("point-in-time restore: no transaction in the archive ended after the target; replaying the archive to its end, which is the state at the target",
				"target", r.Target.UTC().Format(time.RFC3339))
		}
	}
	if !stop.IsZero() {
		target.Time = stop.UTC().Format("2006-01-02 15:04:05.999999-07:00") // PostgreSQL reads no "Z"
	}
	return PrepareRecovery(e.Config.DataDir, fetch, target, e)
}

// sameMajorVersion refuses a base backup of another major version than this server's binaries:
// PostgreSQL's data files are not compatible across them.
func (e *Engine) sameMajorVersion() error {
	b, err := os.ReadFile(filepath.Join(e.Config.DataDir, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("the base backup has no PG_VERSION: %w", err)
	}
	out, err := e.command(context.Background(), "postgres", "--version").Output()
	if err != nil {
		return fmt.Errorf("postgres --version: %w", err)
	}
	backupMajor := strings.TrimSpace(string(b))
	fields := strings.Fields(string(out)) // "postgres (PostgreSQL) 17.2 (Debian ...)"
	if len(fields) < 3 {
		return fmt.Errorf("postgres --version said %q", out)
	}
	major, _, _ := strings.Cut(fields[2], ".")
	if major != backupMajor {
		return fmt.Errorf("the base backup is of PostgreSQL %s and this server runs %s: a physical backup restores into the same major version", backupMajor, major)
	}
	return nil
}

// recoveryMarker starts the settings PrepareRecovery appends to postgresql.auto.conf.
const recoveryMarker = "# Point-in-time recovery, written by the Datafleet agent."

// clearRecovery removes the recovery's settings once the server left recovery (recovery.signal is
// gone at promotion): a replica cloned from this server, or this server after a restart, must not
// inherit a restore_command and a target that would stop its replay there.
func (e *Engine) clearRecovery() error {
	dir := e.Config.DataDir
	if _, err := os.Stat(filepath.Join(dir, recoverySignal)); err == nil {
		return nil
	}
	auto := filepath.Join(dir, "postgresql.auto.conf")
	b, err := os.ReadFile(auto)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	i := bytes.Index(b, []byte("\n"+recoveryMarker+"\n"))
	if i < 0 {
		return nil
	}
	// PrepareRecovery's settings are the file's last lines: ALTER SYSTEM, which rewrites the
	// file, cannot run before the server does.
	return e.writeFile(auto, b[:i+1])
}

// manager is the binary archive_command and restore_command run.
func (e *Engine) manager() (string, error) {
	if e.Config.Manager != "" {
		return e.Config.Manager, nil
	}
	m, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("the agent's own binary, which the archive commands run: %w", err)
	}
	return m, nil
}
