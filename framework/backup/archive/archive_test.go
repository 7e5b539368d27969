package archive

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

type part struct {
	name string
	data []byte
}

func write(t *testing.T, parts []part) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, p := range parts {
		pw, err := w.Create(p.name)
		if err != nil {
			t.Fatal(err)
		}
		// Odd write sizes, so records do not line up with writes.
		for b := p.data; len(b) > 0; {
			n := min(len(b), 1+rand.IntN(3<<20))
			if _, err := pw.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func read(r io.Reader, skip map[string]bool) ([]part, error) {
	a := NewReader(r)
	var got []part
	for {
		name, pr, err := a.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		if skip[name] {
			got = append(got, part{name: name})
			continue
		}
		b, err := io.ReadAll(pr)
		if err != nil {
			return got, err
		}
		got = append(got, part{name, b})
	}
}

func TestPartsRoundTrip(t *testing.T) {
	big := make([]byte, 5<<20+7)
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	parts := []part{{"globals.sql", []byte("CREATE ROLE a;\n")}, {"empty", nil}, {"databases/app", big}, {"last", []byte("x")}}
	got, err := read(bytes.NewReader(write(t, parts)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(parts) {
		t.Fatalf("got %d parts, want %d", len(got), len(parts))
	}
	for i := range parts {
		if got[i].name != parts[i].name || !bytes.Equal(got[i].data, parts[i].data) {
			t.Fatalf("part %d: got %q (%d bytes), want %q (%d bytes)", i, got[i].name, len(got[i].data), parts[i].name, len(parts[i].data))
		}
	}
	// A reader that skips a part still finds the next one.
	got, err = read(bytes.NewReader(write(t, parts)), map[string]bool{"databases/app": true})
	if err != nil || len(got) != 4 || !bytes.Equal(got[3].data, []byte("x")) {
		t.Fatalf("skipping a part: %v %v", got, err)
	}
}

// Every cut of a complete archive is reported as truncated, never as a shorter complete one.
func TestEveryTruncationIsDetected(t *testing.T) {
	full := write(t, []part{{"a", bytes.Repeat([]byte("a"), 3000)}, {"b", []byte("bb")}})
	for cut := 0; cut < len(full); cut++ {
		_, err := read(bytes.NewReader(full[:cut]), nil)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: got %v, want ErrTruncated", cut, len(full), err)
		}
	}
}

func TestNotAnArchive(t *testing.T) {
	if _, err := read(bytes.NewReader([]byte("PGDMP\x01\x0f\x00 not ours")), nil); err == nil || errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v, want a bad header error", err)
	}
}
