package instance

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// scope is the state of one reconcile, filled in by the phases and read by computeStatus.
type scope struct {
	inst    *v1alpha1.ServiceInstance
	catalog *v1alpha1.VersionCatalog
	release catalog.Release
	// support is where the release stands in its support window; nil until resolved.
	support *catalog.Support
	// failure is a problem with the spec that only a spec (or catalog) change can fix:
	// the reconcile stops and the instance is Failed, without retries and backoff.
	failure *failure
	// archive is where the instance's continuous archive goes, once resolveArchive found it.
	archive *engine.ArchiveInput
	// archiveRefused is the ContinuousArchiving condition when the archive's store cannot be used.
	archiveRefused *metav1.Condition
	// oldestBase is when the archive's oldest physical Backup completed, once findOldestBase
	// looked (windowChecked); nil when there is none.
	oldestBase    *metav1.Time
	windowChecked bool
	windowNow     time.Time
	// children as rendered and decorated, in render order.
	children []client.Object
	// applied is true once every child was applied and every stale child pruned.
	applied bool
	// observation of the running instance; nil until observed.
	observation *engine.Observation
	// requeueAfter asks for another reconcile even if nothing changes (zero: none).
	requeueAfter time.Duration
	// deleting is the status the deletion flow computed; deleted is set once the finalizer is
	// gone and there is nothing left to write.
	deleting *v1alpha1.ServiceInstanceStatus
	deleted  bool
	// paused is true when spec.paused stopped the reconcile after the finalizer.
	paused bool
	// tls is the instance's TLS status once the certificates phase ran (tlsChecked); nil when off.
	tls        *v1alpha1.InstanceTLSStatus
	tlsChecked bool
	// agents reaches the instance's agents as the operator, once the certificates phase ran.
	agents fwagent.Dialer
	// storage is the StorageResized condition (without its type) once expandVolumes looked.
	storage *metav1.Condition
	// pending are the restarts held back (phase_holdrestarts.go), once holdRestarts looked (pendingChecked).
	pending        []v1alpha1.PendingRestart
	pendingChecked bool
	// agentsStuck are the pods whose agents predate in-place upgrades, agentsFailed those whose
	// new agent did not survive taking over, and agentsBehind counts the pods not on the
	// operator's agent yet, once upgradeAgents looked (agentsLooked: the operator knows its own
	// binary).
	agentsStuck  []string
	agentsFailed []string
	agentsBehind int
	agentsLooked bool
	// runningImage is the engine image the pods keep while the catalog's is held back ("" when
	// none is): what status.image reports.
	runningImage string
	// releasing names the held restarts this reconcile lets through (a window, the rollout): the
	// pods are about to roll, which is an update, not a degradation.
	releasing []string
}

// requeue asks for a reconcile within d (the soonest of all requests wins; d <= 0 is ignored).
func (s *scope) requeue(d time.Duration) {
	if d > 0 && (s.requeueAfter == 0 || d < s.requeueAfter) {
		s.requeueAfter = d
	}
}

type failure struct {
	reason  string
	message string
}

func (s *scope) fail(reason, message string) {
	s.failure = &failure{reason: reason, message: message}
}
