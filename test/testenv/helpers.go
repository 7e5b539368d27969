package testenv

import (
	"io"
	"os"
)

// logSink sends manager logs to stderr only when DATAFLEET_TEST_LOGS is set, so test output
// stays readable.
func logSink() io.Writer {
	if os.Getenv("DATAFLEET_TEST_LOGS") != "" {
		return os.Stderr
	}
	return io.Discard
}
