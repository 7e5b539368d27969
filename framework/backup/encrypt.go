package backup

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// Client-side encryption: AES-256-GCM over 64 KiB chunks, each chunk's nonce the object's random
// nonce prefix and the chunk's number, the last chunk marked in its additional data. A changed,
// reordered, dropped or appended chunk fails authentication, and so does a cut stream. The key is
// derived from the Secret's value and the object's salt, so no two objects share a key.

// EncryptionAlgorithm names the scheme in manifests.
const EncryptionAlgorithm = "AES-256-GCM-STREAM-64K"

const (
	encMagic  = "DFENC1\n"
	chunkSize = 64 << 10
	saltSize  = 16
)

// MinKeyBytes is the least a key Secret's value may hold to decrypt with: backups taken before
// StrongKeyBytes was required stay readable.
const MinKeyBytes = 16

// StrongKeyBytes is the least a key Secret's value must hold to encrypt a new backup with (it is
// not a password: it should be random, for example `openssl rand -base64 32`, 44 bytes).
const StrongKeyBytes = 32

// strongKeyDistinct is the least number of distinct byte values a key must have: a repeated
// pattern or a word padded to length has few. Random bytes or their base64 have about 30 in 32.
const strongKeyDistinct = 16

// CheckKey says why a key is too weak to encrypt new backups with, nil when it is not. KeyID is a
// fast HMAC of the key, an offline oracle for a guessable one: only a key with no guessable
// structure makes it harmless.
func CheckKey(secret []byte) error {
	if len(secret) < StrongKeyBytes {
		return fmt.Errorf("the encryption key has %d bytes; new backups need at least %d random bytes (openssl rand -base64 32)", len(secret), StrongKeyBytes)
	}
	var seen [256]bool
	distinct := 0
	for _, b := range secret {
		if !seen[b] {
			seen[b], distinct = true, distinct+1
		}
	}
	if distinct < strongKeyDistinct {
		return fmt.Errorf("the encryption key has only %d distinct bytes, a pattern rather than random bytes; new backups need a random key (openssl rand -base64 32)", distinct)
	}
	return nil
}

// ErrWrongKey means the key is not the one the backup was encrypted with.
var ErrWrongKey = errors.New("the encryption key is not the one this backup was encrypted with")

// KeyID identifies a key without revealing it, so a restore can name a wrong key before reading.
func KeyID(secret []byte) string {
	m := hmac.New(sha256.New, []byte("datafleet backup key id"))
	m.Write(secret)
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// manifestKey is the key manifests are authenticated with, derived apart from the objects' keys.
func manifestKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("datafleet manifest mac\x00"))
	return m.Sum(nil)
}

func objectKey(secret, salt []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("datafleet backup key\x00"))
	m.Write(salt)
	return m.Sum(nil)
}

func newGCM(secret, salt []byte) (cipher.AEAD, error) {
	if len(secret) < MinKeyBytes {
		return nil, fmt.Errorf("the encryption key has %d bytes; it needs at least %d random bytes", len(secret), MinKeyBytes)
	}
	block, err := aes.NewCipher(objectKey(secret, salt))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func chunkNonce(prefix []byte, n uint64) []byte {
	nonce := make([]byte, 12)
	copy(nonce, prefix[:4])
	binary.BigEndian.PutUint64(nonce[4:], n)
	return nonce
}

func finalAD(last bool) []byte {
	if last {
		return []byte{1}
	}
	return []byte{0}
}

// encryptWriter seals what is written to it in chunks; Close seals the last (possibly empty) one.
type encryptWriter struct {
	w      io.Writer
	aead   cipher.AEAD
	prefix []byte
	n      uint64
	buf    []byte
	out    []byte
}

func newEncryptWriter(w io.Writer, secret []byte) (*encryptWriter, error) {
	if err := CheckKey(secret); err != nil {
		return nil, err
	}
	head := make([]byte, saltSize+4)
	if _, err := rand.Read(head); err != nil {
		return nil, err
	}
	aead, err := newGCM(secret, head[:saltSize])
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, encMagic); err != nil {
		return nil, err
	}
	if _, err := w.Write(head); err != nil {
		return nil, err
	}
	return &encryptWriter{w: w, aead: aead, prefix: head[saltSize:], buf: make([]byte, 0, chunkSize)}, nil
}

func (e *encryptWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		// A full buffer is sealed only when more data follows, so the last chunk is the one Close seals.
		if len(e.buf) == chunkSize {
			if err := e.seal(false); err != nil {
				return written, err
			}
		}
		n := copy(e.buf[len(e.buf):chunkSize], p)
		e.buf = e.buf[:len(e.buf)+n]
		p, written = p[n:], written+n
	}
	return written, nil
}

func (e *encryptWriter) seal(last bool) error {
	e.out = e.aead.Seal(e.out[:0], chunkNonce(e.prefix, e.n), e.buf, finalAD(last))
	e.n++
	e.buf = e.buf[:0]
	_, err := e.w.Write(e.out)
	return err
}

func (e *encryptWriter) Close() error { return e.seal(true) }

// decryptReader opens chunks; it fails unless the stream ends exactly after the last chunk.
type decryptReader struct {
	r      *bufio.Reader
	aead   cipher.AEAD
	prefix []byte
	n      uint64
	sealed []byte
	buf    []byte // holds the open chunk; plain is what is left of it to read
	plain  []byte
	done   bool
}

func newDecryptReader(r io.Reader, secret []byte) (*decryptReader, error) {
	head := make([]byte, len(encMagic)+saltSize+4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, fmt.Errorf("reading the encryption header: %w", err)
	}
	if string(head[:len(encMagic)]) != encMagic {
		return nil, errors.New("the data is not encrypted the way the manifest says")
	}
	salt := head[len(encMagic) : len(encMagic)+saltSize]
	aead, err := newGCM(secret, salt)
	if err != nil {
		return nil, err
	}
	return &decryptReader{r: bufio.NewReaderSize(r, 2*(chunkSize+aead.Overhead())), aead: aead,
		prefix: head[len(encMagic)+saltSize:], sealed: make([]byte, chunkSize+aead.Overhead()), buf: make([]byte, 0, chunkSize)}, nil
}

func (d *decryptReader) Read(p []byte) (int, error) {
	for len(d.plain) == 0 {
		if d.done {
			return 0, io.EOF
		}
		if err := d.open(); err != nil {
			return 0, err
		}
	}
	n := copy(p, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

func (d *decryptReader) open() error {
	n, err := io.ReadFull(d.r, d.sealed)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	// The chunk is the last one if nothing follows it.
	_, peekErr := d.r.Peek(1)
	last := errors.Is(peekErr, io.EOF)
	plain, openErr := d.aead.Open(d.buf[:0], chunkNonce(d.prefix, d.n), d.sealed[:n], finalAD(last))
	if openErr != nil {
		return errors.New("decryption failed: the backup was changed, cut short, or encrypted with another key")
	}
	d.n++
	d.plain, d.done = plain, last
	return nil
}
