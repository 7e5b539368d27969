package testenv

import (
	"flag"
	"time"
)

// binaryStarted stands for when go test's -timeout began to count: the test binary's start. The
// alarm starts a little later (when the tests start, after any TestMain setup), so a stop timed
// from here comes early, never late.
var binaryStarted = time.Now()

// stopBeforeTimeout runs stop shortly before go test's -timeout ends the test binary, and returns
// what cancels that. A timed-out binary panics and exits without running any cleanup, and
// envtest's etcd and kube-apiserver are processes of their own: they went on running for an hour
// after a timed-out package, eating the cores of the next tests. stop gets the last stretch
// (timeoutStopMargin, at most a third of the timeout) to end them: envtest sends SIGTERM and
// waits for each in turn.
func stopBeforeTimeout(stop func()) (cancel func() bool) {
	timeout := testTimeout()
	if timeout <= 0 {
		return func() bool { return false }
	}
	margin := min(timeoutStopMargin, timeout/3)
	return time.AfterFunc(time.Until(binaryStarted.Add(timeout-margin)), stop).Stop
}

// timeoutStopMargin is how long before the timeout the control plane is stopped.
const timeoutStopMargin = 30 * time.Second

// testTimeout is go test's -timeout for this binary, 0 when it has none (or is no test binary).
func testTimeout() time.Duration {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return 0
	}
	d, err := time.ParseDuration(f.Value.String())
	if err != nil {
		return 0
	}
	return d
}
