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

// Reader reads r and fails with ErrTooLarge once more than max bytes came, for a reader that
// decodes as it goes (json.Decoder) and holds less than it reads.
func Reader(r io.Reader, max int64) io.Reader { return &reader{r: io.LimitReader(r, max+1), max: max} }

type reader struct {
	r         io.Reader
	max, read int64
}

func (l *reader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if l.read += int64(n); l.read > l.max {
		return n, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.max)
	}
	return n, err
}
