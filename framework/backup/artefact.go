// Package backup is what every engine's backups share: the artefact in the store (a compressed,
// optionally encrypted stream and a manifest written after it), and its verification.
package backup

import (
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// FormatVersion is the artefact layout this code writes. Version 2 added the manifest's MAC;
// version 1 manifests are still read (from stores without a key: see Authenticate).
const FormatVersion = 2

// DataObjects are the names a backup's data object can have, in its directory.
var DataObjects = []string{dataName, dataName + encSuffix}

// Object names inside a backup's directory.
const (
	ManifestName = "manifest.json"
	dataName     = "data.gz"
	encSuffix    = ".enc"
)

// Manifest describes one complete backup. It is written only after its data object is complete,
// so a directory without a manifest holds no backup, whatever else it holds.
type Manifest struct {
	Format        int    `json:"format"`
	Engine        string `json:"engine"`
	EngineVersion string `json:"engineVersion"`
	Namespace     string `json:"namespace"`
	Instance      string `json:"instance"`
	Backup        string `json:"backup"`
	// Data is the data object's name, relative to the manifest.
	Data        string      `json:"data"`
	Compression string      `json:"compression"`
	Encryption  *Encryption `json:"encryption,omitempty"`
	// Size and SHA256 are those of the data object as stored.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// RawSize is how many bytes the engine's dump produced.
	RawSize   int64     `json:"rawSize"`
	Started   time.Time `json:"started"`
	Completed time.Time `json:"completed"`
	// Source is the backed-up instance's spec (JSON), from which a restore creates a new instance.
	Source json.RawMessage `json:"source,omitempty"`
	// Method is how the data was taken: MethodLogical (the engine's dump; also when empty, as
	// before methods existed) or MethodPhysical (a base backup, described by Base).
	Method string `json:"method,omitempty"`
	// Base is where a physical backup's restore starts replaying the instance's archived log.
	Base *agent.BaseBackupInfo `json:"base,omitempty"`
	// MAC authenticates every other field with the store's key (HMAC-SHA256 with a key derived
	// from it), when the store has one: see Authenticate.
	MAC string `json:"mac,omitempty"`
}

// Backup methods as manifests record them: a Backup's spec.method.
const (
	MethodLogical  = string(v1alpha1.BackupLogical)
	MethodPhysical = string(v1alpha1.BackupPhysical)
)

// Encryption says how the data object is encrypted.
type Encryption struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"keyID"`
}

// Dump writes an engine's dump to w and returns nil only if the dump is complete.
type Dump func(ctx context.Context, w io.Writer) error

// Directories are relative to the store's prefix.

// Write streams dump through gzip (and encryption when key is not nil) into dir/data.gz[.enc]
// and then writes dir/manifest.json, filling m's data fields. Memory stays flat: nothing is
// buffered beyond a chunk. On any failure the upload is aborted and what was written deleted;
// no manifest is written.
func Write(ctx context.Context, s *store.Store, dir string, m Manifest, key []byte, dump Dump) (Manifest, error) {
	m.Format, m.Compression, m.Data = FormatVersion, "gzip", dataName
	if key != nil {
		m.Data += encSuffix
		m.Encryption = &Encryption{Algorithm: EncryptionAlgorithm, KeyID: KeyID(key)}
	}
	if m.Started.IsZero() {
		m.Started = time.Now().UTC()
	}
	dataKey := s.Key(dir, m.Data)
	size, sum, raw, err := writeData(ctx, s.Bucket, dataKey, key, dump)
	if err != nil {
		// Close aborted the upload; a store that kept a partial object gets it deleted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.Bucket.Delete(dctx, dataKey); derr != nil && gcerrors.Code(derr) != gcerrors.NotFound {
			err = fmt.Errorf("%w (and deleting the partial data failed: %v)", err, derr)
		}
		return m, err
	}
	m.Size, m.SHA256, m.RawSize, m.Completed = size, sum, raw, time.Now().UTC()
	if key != nil {
		if m.MAC, err = manifestMAC(m, key); err != nil {
			return m, err
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if len(b) > MaxManifestSize {
		return m, fmt.Errorf("the manifest would have %d bytes, more than the %d a restore reads", len(b), MaxManifestSize)
	}
	if err := s.Bucket.WriteAll(ctx, s.Key(dir, ManifestName), b, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return m, fmt.Errorf("writing the manifest: %w", err)
	}
	return m, nil
}

// counter counts and hashes what passes through it.
type counter struct {
	w io.Writer
	n int64
	h hash.Hash
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	return n, err
}

func writeData(ctx context.Context, b *blob.Bucket, key string, secret []byte, dump Dump) (size int64, sum string, raw int64, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bw, err := b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return 0, "", 0, err
	}
	stored := &counter{w: bw, h: sha256.New()}
	var sink io.Writer = stored
	var enc *encryptWriter
	if secret != nil {
		if enc, err = newEncryptWriter(stored, secret); err != nil {
			cancel()
			_ = bw.Close()
			return 0, "", 0, err
		}
		sink = enc
	}
	gz := gzip.NewWriter(sink)
	produced := &counter{w: gz}
	err = dump(ctx, produced)
	if err == nil {
		err = gz.Close()
	}
	if err == nil && enc != nil {
		err = enc.Close()
	}
	if err != nil {
		// Cancelling the writer's context before Close aborts the upload (gocloud.dev/blob).
		cancel()
		_ = bw.Close()
		return 0, "", 0, err
	}
	if err := bw.Close(); err != nil {
		return 0, "", 0, fmt.Errorf("completing the upload: %w", err)
	}
	return stored.n, hex.EncodeToString(stored.h.Sum(nil)), produced.n, nil
}

// MaxManifestSize bounds a manifest read: a manifest is a few KiB (the source instance's spec
// is the largest part), and a store that sends more must not fill the reader's memory.
const MaxManifestSize = 1 << 20

// ReadManifest reads dir/manifest.json. A missing manifest means the backup is not complete.
func ReadManifest(ctx context.Context, s *store.Store, dir string) (Manifest, error) {
	var m Manifest
	key := s.Key(dir, ManifestName)
	b, err := s.ReadLimited(ctx, key, MaxManifestSize)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return m, fmt.Errorf("%w: no manifest at %s", ErrIncomplete, key)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("the manifest at %s is not valid: %w", key, err)
	}
	if m.Data != dataName && m.Data != dataName+encSuffix {
		// Any other name could point outside the backup's directory (../another/data.gz).
		return m, fmt.Errorf("the manifest at %s names its data %q, which is not an object a backup writes", key, m.Data)
	}
	if m.Format != 1 && m.Format != FormatVersion {
		return m, fmt.Errorf("the manifest has format %d; this operator reads formats 1 and %d", m.Format, FormatVersion)
	}
	return m, nil
}

// Errors a restore reports.
var (
	ErrIncomplete = errors.New("the backup is not complete")
	ErrCorrupt    = errors.New("the backup's data does not match its manifest")
)

// Verify reads the whole data object and checks its size and checksum against the manifest, and
// that key is the one it was encrypted with: before a restore touches any data.
func Verify(ctx context.Context, s *store.Store, dir string, m Manifest, key []byte) error {
	if err := Authenticate(m, key); err != nil {
		return err
	}
	r, err := s.Bucket.NewReader(ctx, s.Key(dir, m.Data), nil)
	if err != nil {
		return fmt.Errorf("opening %s: %w", m.Data, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", m.Data, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != m.Size || got != m.SHA256 {
		return fmt.Errorf("%w: %s has %d bytes with sha256 %s; the manifest says %d bytes with sha256 %s",
			ErrCorrupt, m.Data, n, got, m.Size, m.SHA256)
	}
	return nil
}

// ErrUnauthenticated means a store with a key holds a backup that the key did not write: not
// encrypted, or its manifest not authenticated by it. Whoever can write to the store could have
// put it there.
var ErrUnauthenticated = errors.New("the backup is not authenticated by the store's key")

// Authenticate checks a manifest against the store's key before anything of the backup is used:
// in a store with a key, the backup must be encrypted with that key and its manifest carry a
// valid MAC (so neither its spec, its checksums nor the name of its data can have been changed,
// and an unencrypted backup cannot stand in for an encrypted one). A store without a key has
// nothing to authenticate with: an encrypted backup there is refused for want of the key, an
// unencrypted one is what the store holds (protect such stores with the provider's access
// control, or give them a key).
func Authenticate(m Manifest, key []byte) error {
	switch {
	case key == nil && m.Encryption == nil:
		return nil
	case key == nil:
		return fmt.Errorf("%w: the backup is encrypted (%s, key id %s) and no key was given", ErrWrongKey, m.Encryption.Algorithm, m.Encryption.KeyID)
	case m.Encryption == nil:
		return fmt.Errorf("%w: it is not encrypted, and this store encrypts every backup it holds", ErrUnauthenticated)
	case m.Encryption.Algorithm != EncryptionAlgorithm:
		return fmt.Errorf("the backup is encrypted with %s, which this operator cannot read", m.Encryption.Algorithm)
	case KeyID(key) != m.Encryption.KeyID:
		return fmt.Errorf("%w: its id is %s, the backup's is %s", ErrWrongKey, KeyID(key), m.Encryption.KeyID)
	case m.MAC == "":
		return fmt.Errorf("%w: its manifest has no MAC (format %d)", ErrUnauthenticated, m.Format)
	}
	want, err := manifestMAC(m, key)
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(want), []byte(m.MAC)) {
		return fmt.Errorf("%w: its manifest's MAC does not match", ErrUnauthenticated)
	}
	return nil
}

// manifestMAC is the MAC of every field of m but the MAC, as JSON (encoding/json writes a
// struct's fields in order and compacts raw messages, so the same manifest gives the same bytes).
func manifestMAC(m Manifest, key []byte) (string, error) {
	m.MAC = ""
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, manifestKey(key))
	mac.Write(b)
	return hex.EncodeToString(mac.Sum(nil)), nil
}

// Open streams the dump back: decrypted and decompressed. Call Verify first. The returned reader
// fails, rather than ending early, if the data no longer matches the manifest at its end.
func Open(ctx context.Context, s *store.Store, dir string, m Manifest, key []byte) (io.ReadCloser, error) {
	if err := Authenticate(m, key); err != nil {
		return nil, err
	}
	br, err := s.Bucket.NewReader(ctx, s.Key(dir, m.Data), nil)
	if err != nil {
		return nil, err
	}
	checked := &checkedReader{r: br, h: sha256.New(), m: m}
	var src io.Reader = checked
	if m.Encryption != nil {
		d, err := newDecryptReader(src, key)
		if err != nil {
			br.Close()
			return nil, err
		}
		src = d
	}
	gz, err := gzip.NewReader(src)
	if err != nil {
		br.Close()
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &readCloser{Reader: gz, close: br.Close}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// checkedReader turns EOF into ErrCorrupt when what was read is not what the manifest describes:
// the object may have changed since Verify read it.
type checkedReader struct {
	r io.Reader
	h hash.Hash
	n int64
	m Manifest
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if errors.Is(err, io.EOF) && (c.n != c.m.Size || hex.EncodeToString(c.h.Sum(nil)) != c.m.SHA256) {
		return n, fmt.Errorf("%w: the data changed while it was being restored", ErrCorrupt)
	}
	return n, err
}
