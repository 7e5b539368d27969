// Package bounded reads what another party sends (a store, an agent, a broker's API) with a limit,
// so that an endless or oversized answer fails one call with a clear error instead of filling the
// reader's memory: the operator serves every instance in the cluster from one process.
package bounded

import (
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is ReadAll's error for an answer larger than its limit.
var ErrTooLarge = errors.New("larger than expected")

// ReadAll reads r to its end, refusing it after max bytes: at most max+1 bytes are read.
func ReadAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
	}
	return b, nil
}
