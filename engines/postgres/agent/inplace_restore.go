package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/backup"
)

// A physical backup restored in place replaces the data of every member of a running instance.
// The operator restarts every pod with the recovery's configuration, which names the restore
// (backup.RecoveryConfig.InPlace), and once none that ran before is left it names on the primary
// lease the member that recovers (primary.RecoveryAnnotation): nothing is touched before that
// word, so no member discards data while another could still serve or be copied from. The named
// member sets its data aside, recovers from the store as a restored instance's first member does
// and records the restore in the new data directory; the server promotes itself at the target, and
// only then is the set-aside copy removed (a failed recovery puts it back: nothing is lost). The
// other members discard theirs (copies of the old primary's) and clone the recovered member, the
// record with it. A member whose data records the restore is done: a restart does not recover again.

const (
	// recoveredFile, in the data directory, names the in-place restore the data comes from.
	recoveredFile = "datafleet-recovered"
	// beforeRestoreSuffix names where the recovering member keeps its data until the promotion.
	beforeRestoreSuffix = ".before-restore"
	// recoveryLeaseWait bounds the wait for the operator's word; the pod restarts after it.
	recoveryLeaseWait = 10 * time.Minute
)

// inPlaceRestore is the in-place restore this member's data has yet to take part in, or "".
func (e *Engine) inPlaceRestore() (string, error) {
	if e.Config.Recovery == "" {
		return "", nil
	}
	c, err := backup.ReadRecoveryConfig(e.Config.Recovery)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // the Secret goes when its restore completes
	}
	if err != nil || c.InPlace == "" {
		return "", err
	}
	if recovered, _ := os.ReadFile(filepath.Join(e.Config.DataDir, recoveredFile)); strings.TrimSpace(string(recovered)) == c.InPlace {
		return "", nil
	}
	return c.InPlace, nil
}

// restoreInPlace takes this member's part in the in-place restore id: it recovers the data from the
// store when the operator named it, and otherwise discards its own so that it clones the member that
// did.
func (e *Engine) restoreInPlace(ctx context.Context, id string) error {
	named, err := e.recoveringMember(ctx, id)
	if err != nil {
		return err
	}
	dir := e.Config.DataDir
	if named != e.Config.Name {
		log.FromContext(ctx).Info("restoring in place: discarding this member's data to clone the recovered member", "recovers", named, "restore", id)
		return os.RemoveAll(dir)
	}
	aside := dir + beforeRestoreSuffix
	switch _, err := os.Stat(aside); {
	case err == nil:
		// An earlier attempt was interrupted after it set the data aside: what is in place is its
		// partial recovery.
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	case errors.Is(err, os.ErrNotExist):
		if err := os.Rename(dir, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	default:
		return err
	}
	log.FromContext(ctx).Info("restoring in place: recovering from the store; this member's data is kept aside until the promotion",
		"restore", id, "keptAt", aside)
	if err := e.recoverFromStore(ctx); err != nil {
		// recoverFromStore removed what it unpacked: the data goes back where it was.
		if rerr := os.Rename(aside, dir); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		return err
	}
	return e.writeFile(filepath.Join(dir, recoveredFile), []byte(id))
}

// recoveringMember waits for the operator to name on the primary lease the member that recovers
// the restore id, and returns it. A member without a lease (a standalone server) recovers itself.
func (e *Engine) recoveringMember(ctx context.Context, id string) (string, error) {
	if e.Config.Lease == nil {
		return e.Config.Name, nil
	}
	ctx, cancel := context.WithTimeout(ctx, recoveryLeaseWait)
	defer cancel()
	for logged := false; ; logged = true {
		_, s, err := e.Config.Lease.Get(ctx)
		if err == nil && s.Recovery == id {
			return s.Holder, nil
		}
		if !logged {
			log.FromContext(ctx).Info("restoring in place: waiting for the operator to name the member that recovers", "restore", id)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("restoring in place: the operator did not name the member that recovers restore %s within %s: %w", id, recoveryLeaseWait, ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
}

// checkCloned refuses a clone that does not come from the member recovered for the restore id (a
// primary that has not recovered yet): it is removed, and the next start clones again.
func (e *Engine) checkCloned(id string) error {
	recovered, _ := os.ReadFile(filepath.Join(e.Config.DataDir, recoveredFile))
	if strings.TrimSpace(string(recovered)) == id {
		return nil
	}
	return errors.Join(fmt.Errorf("restoring in place: the clone does not come from the member recovered for restore %s; cloning again", id),
		os.RemoveAll(e.Config.DataDir))
}

// dropBeforeRestore removes the data an in-place restore set aside, once the recovered server has
// promoted itself (recovery.signal goes then): the restore can no longer fail back to it.
func (e *Engine) dropBeforeRestore(ctx context.Context) {
	aside := e.Config.DataDir + beforeRestoreSuffix
	for {
		if _, err := os.Stat(aside); errors.Is(err, os.ErrNotExist) {
			return
		}
		if _, err := os.Stat(filepath.Join(e.Config.DataDir, recoverySignal)); errors.Is(err, os.ErrNotExist) {
			if err := os.RemoveAll(aside); err != nil {
				log.FromContext(ctx).Error(err, "restoring in place: removing the data set aside")
			} else {
				log.FromContext(ctx).Info("restoring in place: the recovered server promoted itself; removed the data set aside", "path", aside)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
