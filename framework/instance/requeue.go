package instance

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// spreadFrom is the shortest requeue that is spread: a shorter one waits for something imminent
// (a pod turning Ready, a lease expiring) and keeps its time.
const spreadFrom = 20 * time.Second

// spread lengthens a periodic requeue (a settled instance's poll) by up to a tenth, by a share
// fixed for each instance (from its UID). Instances reconciled together (created together, or all
// of them when the operator starts) would otherwise poll in the same second every period, a burst
// of thousands of calls at 10,000 instances; with periods that differ by instance their polls
// drift apart and spread over the period (docs/scale.md).
func spread(d time.Duration, uid types.UID) time.Duration {
	if d < spreadFrom {
		return d
	}
	sum := sha256.Sum256([]byte(uid))
	share := float64(binary.BigEndian.Uint32(sum[:4])) / (1 << 32)
	return d + time.Duration(float64(d/10)*share)
}
