// Package archive frames several named parts (one per database, a definitions file, ...) into
// one stream whose parts' sizes are not known in advance, so that a dump can be piped from the
// engine's tools straight into the store. The stream ends with an explicit end record: a reader
// can tell a complete dump from one cut short, which a restore must never apply.
package archive

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Record kinds.
const (
	recPart = 'P' // uvarint length, part name
	recData = 'D' // uvarint length, bytes of the current part
	recEnd  = 'E' // the archive is complete
)

const (
	magic = "DFARCH1\n"
	// maxChunk bounds one data record, and so what a reader holds at once.
	maxChunk = 1 << 20
	maxName  = 4096
)

// ErrTruncated means the stream ended before its end record: the dump did not complete.
var ErrTruncated = errors.New("the archive ends before its end record: the dump did not complete")

// Writer writes an archive. Parts are written one after the other.
type Writer struct {
	w       io.Writer
	started bool
	closed  bool
}

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (a *Writer) record(kind byte, payload []byte) error {
	if !a.started {
		if _, err := io.WriteString(a.w, magic); err != nil {
			return err
		}
		a.started = true
	}
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := 1
	if kind != recEnd {
		n += binary.PutUvarint(hdr[1:], uint64(len(payload)))
	}
	if _, err := a.w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := a.w.Write(payload)
	return err
}

// Create starts a new part; what is written to the returned writer belongs to it until the next
// Create or Close.
func (a *Writer) Create(name string) (io.Writer, error) {
	if a.closed {
		return nil, errors.New("archive: Create after Close")
	}
	if name == "" || len(name) > maxName {
		return nil, fmt.Errorf("archive: invalid part name %q", name)
	}
	if err := a.record(recPart, []byte(name)); err != nil {
		return nil, err
	}
	return partWriter{a}, nil
}

type partWriter struct{ a *Writer }

func (p partWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), maxChunk)
		if err := p.a.record(recData, b[:n]); err != nil {
			return written, err
		}
		written += n
		b = b[n:]
	}
	return written, nil
}

// Close writes the end record. Only a dump that succeeded should call it.
func (a *Writer) Close() error {
	if a.closed {
		return nil
	}
	a.closed = true
	return a.record(recEnd, nil)
}

// Reader reads an archive part by part.
type Reader struct {
	r       *bufio.Reader
	started bool
	pending int64 // bytes of the current data record not yet read
	inPart  bool
	next    string // the name of a part whose record was read while draining the previous one
	done    bool
}

// NewReader reads the archive from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 64<<10)} }

// Next moves to the next part, skipping what is left of the current one. It returns io.EOF
// after the end record and ErrTruncated if the stream ends without one.
func (a *Reader) Next() (string, io.Reader, error) {
	if !a.started {
		head := make([]byte, len(magic))
		if _, err := io.ReadFull(a.r, head); err != nil {
			return "", nil, fmt.Errorf("archive: reading the header: %w", truncated(err))
		}
		if string(head) != magic {
			return "", nil, errors.New("archive: not a Datafleet archive (bad header)")
		}
		a.started = true
	}
	for a.next == "" && !a.done {
		if _, err := io.Copy(io.Discard, partReader{a}); err != nil {
			return "", nil, err
		}
		if a.next == "" && !a.done {
			// The first record of the archive: partReader stops at any part record.
			if err := a.readRecord(); err != nil {
				return "", nil, err
			}
		}
	}
	if a.done {
		return "", nil, io.EOF
	}
	name := a.next
	a.next, a.inPart = "", true
	return name, partReader{a}, nil
}

// readRecord reads one record header (and a part's name).
func (a *Reader) readRecord() error {
	kind, err := a.r.ReadByte()
	if err != nil {
		return truncated(err)
	}
	if kind == recEnd {
		a.done, a.inPart = true, false
		return nil
	}
	n, err := binary.ReadUvarint(a.r)
	if err != nil {
		return truncated(err)
	}
	switch kind {
	case recPart:
		if n == 0 || n > maxName {
			return fmt.Errorf("archive: invalid part name length %d", n)
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(a.r, name); err != nil {
			return truncated(err)
		}
		a.next, a.inPart = string(name), false
	case recData:
		if !a.inPart || n > maxChunk {
			return fmt.Errorf("archive: unexpected data record of %d bytes", n)
		}
		a.pending = int64(n)
	default:
		return fmt.Errorf("archive: unknown record kind %q", kind)
	}
	return nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// partReader reads the current part's data; it reports io.EOF at the next part or the end.
type partReader struct{ a *Reader }

func (p partReader) Read(b []byte) (int, error) {
	a := p.a
	for a.pending == 0 {
		if !a.inPart {
			return 0, io.EOF
		}
		if err := a.readRecord(); err != nil {
			return 0, err
		}
	}
	if int64(len(b)) > a.pending {
		b = b[:a.pending]
	}
	n, err := a.r.Read(b)
	a.pending -= int64(n)
	if err != nil {
		return n, truncated(err)
	}
	return n, nil
}

// Each calls fn with every part in order, and returns nil only once the end record was read:
// a caller acts on a complete archive only after Each returned nil.
func (a *Reader) Each(fn func(name string, part io.Reader) error) error {
	for {
		name, part, err := a.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(name, part); err != nil {
			return err
		}
	}
}
