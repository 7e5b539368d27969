package rabbitmq

import (
	"context"
	"testing"
)

// A node started over a volume that outlived its Secrets (a retained volume re-bound after its
// namespace was deleted: the cookie and the administrator's password are new) lets the operator in
// with the new password, keeps its messages, and is not reported ready before that.
func TestANodeOverAVolumeThatOutlivedItsSecretsLetsTheOperatorIn(t *testing.T) {
	c := newLocalCluster(t, 1)
	n := c.start(0, "")
	waitReady(t, n)
	const queue, count = "kept", 5
	publish(t, n, queue, count)
	n.halt(t)

	c.cookie, c.password = "a-new-cookie", "a-new-administrator-password"
	n = c.start(0, "")
	waitReady(t, n)
	if _, err := n.management().nodes(context.Background()); err != nil {
		t.Fatalf("the management API refuses the Secret's new password on a ready node: %v", err)
	}
	if got := consume(t, n, queue, count); got != count {
		t.Fatalf("the node came back with %d of its %d messages", got, count)
	}
}
