package job

import (
	"context"
	"fmt"
	"time"

	"github.com/datafleet-dev/datafleet/framework/engine"
)

const (
	// DefaultReachTimeout is how long a Job waits for the instance to answer before it fails: a
	// network plugin admits a new pod within seconds, a failover ends within a minute.
	DefaultReachTimeout = 2 * time.Minute
	// reachInterval is the pause between two attempts, and reachAttempt the most one may take.
	reachInterval = 2 * time.Second
	reachAttempt  = 15 * time.Second
)

// ReasonEngineUnreachable is a Job's reason when the instance never answered it.
const ReasonEngineUnreachable = "EngineUnreachable"

// reach waits until the engine answers the Job (engine.Backuper.Reach), at most timeout. Kubernetes
// asks pods to be "resilient against being started up with different network connectivity than
// expected" (the NetworkPolicy documentation): a Job's pod may run before the network plugin
// lets it through the instance's policy, and its first connection is then refused. Nothing has
// been read or written when reach gives up.
func reach(ctx context.Context, b engine.Backuper, t engine.BackupTarget, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultReachTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(reachInterval)
	defer tick.Stop()
	for attempts := 1; ; attempts++ {
		actx, acancel := context.WithTimeout(ctx, reachAttempt)
		err := b.Reach(actx, t)
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the instance did not answer in %s (%d attempts), last: %w", timeout, attempts, err)
		case <-tick.C:
		}
	}
}
