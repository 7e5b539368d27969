package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/datafleet-dev/datafleet/framework/primary"
	"github.com/datafleet-dev/datafleet/framework/workload"
)

// A physical backup restored in place (framework/backup/controllers: the Restore writes the
// recovery's Secret, annotates the instance with workload.InPlaceRecoveryAnnotation and restarts
// every pod) replaces the data of every member. Which member recovers it from the store is the
// lease's to say, as it says which member serves: once no pod that ran before the restore is left
// (none can serve or be copied from), the holder (or the first member, when the lease has none)
// is named for the restore (primary.AssignRecovery). Its agent sets its data aside, recovers and
// promotes itself at the target; the others, which waited for the same word, discard theirs and
// clone it. Until the name is on the lease the instance waits, not Ready.

// recoverInPlace names the member that recovers an in-place restore, once every pod restarted for it.
func (s *supervision) recoverInPlace(ctx context.Context) (bool, error) {
	id := s.Instance.Annotations[workload.InPlaceRecoveryAnnotation]
	if id == "" || s.state.Recovery == id {
		return false, nil
	}
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: s.Instance.Namespace, Name: workload.RecoverySecretName(s.Instance)}
	if err := s.Client.Get(ctx, key, secret); apierrors.IsNotFound(err) {
		s.Wait("Recovering", "waiting for the in-place restore's configuration (Secret "+key.Name+")", 2*time.Second)
		return true, nil
	} else if err != nil {
		return false, err
	}
	if old := workload.NotRestartedFor(s.Pods, secret); len(old) > 0 {
		s.Wait("Recovering", fmt.Sprintf("restoring in place: waiting for %s to restart with the recovery", strings.Join(old, ", ")), 2*time.Second)
		return true, nil
	}
	holder := s.state.Holder
	if n := workload.Ordinal(holder); holder == "" || n < 0 || n >= int(s.Instance.DesiredReplicas()) {
		holder = s.sts + "-0"
	}
	l, err := primary.AssignRecovery(ctx, s.Client, s.lease, holder, id, s.Now)
	if err != nil {
		return false, fmt.Errorf("naming %s to recover in place: %w", holder, err)
	}
	log.FromContext(ctx).Info("restoring in place: named the member that recovers from the store", "member", holder, "restore", id)
	s.read(l)
	s.Wait("Recovering", fmt.Sprintf("restoring in place: %s recovers the data from the store, the other members clone it", holder), 2*time.Second)
	return true, nil
}
