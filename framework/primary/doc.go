// Package primary decides which pod of an instance may accept writes, for engines with a single
// writable primary (PostgreSQL). The decision lives in a coordination.k8s.io Lease per instance:
//
//   - The operator is the only one who names a holder, and only when the lease has no live
//     holder: it was never held, it was released, or it expired (Assign). It picks the most
//     advanced healthy replica (Elect).
//   - The agent of the holder renews the lease; its engine accepts writes only while it holds it.
//     An agent that has not renewed for FenceAfter, or that sees another holder, stops its engine
//     at once (fencing). FenceAfter is shorter than LeaseDuration, so the old primary has stopped
//     before the operator may name a new holder.
//   - A primary that cannot renew because the API server is away for every member goes on while
//     every other member confirms it directly (failsafe.go); one that is alone cut off fences.
//   - A planned switchover asks the holder to step down (an annotation); it stops its engine
//     cleanly, so the replicas receive everything, and releases the lease; the operator then
//     elects, preferring the requested pod.
//
// docs/postgres.md explains why two writable primaries cannot exist at once, and its limits.
package primary
