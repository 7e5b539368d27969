package backup

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// A segment archive is an append-only log kept in a store beside the backups: PostgreSQL's WAL
// for continuous archiving (issue #27), or any engine's log that comes in named, immutable
// segments. Each segment is stored once, under its name, compressed and (with the store's key)
// encrypted like a backup's data. Writing the same segment again is harmless, which an archiver
// that retries needs; a different segment under a name already taken is refused (ErrSegmentConflict)
// and nothing is overwritten, so two primaries that both believe they archive a timeline stop
// loudly instead of replacing each other's history.
//
// Each object holds a header naming its segment inside the compressed (and encrypted) stream: an
// object copied under another name is refused on reading, and with a key nobody without it can
// forge one. Its metadata holds the content's sha256 and size (what the idempotence check
// compares) and the key's id (so a wrong key is named before anything is read).

// SegmentArchive is the archive under Dir of Store; Key encrypts what Put writes (nil: no
// encryption) and opens what Get reads.
type SegmentArchive struct {
	Store *store.Store
	Dir   string
	Key   []byte
}

// MaxSegmentBytes bounds a segment (PostgreSQL's largest WAL segment is 1 GiB): a store's
// object that would decompress to more is refused on reading.
const MaxSegmentBytes = 1 << 30

// ErrSegmentConflict means the archive holds a different segment under the name.
var ErrSegmentConflict = errors.New("the archive holds a different segment under this name")

var segmentNamePattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$`)

const (
	segmentHeader  = "DFSEG1 "
	segmentSuffix  = ".gz"
	metaSHA256     = "sha256"
	metaSize       = "size"
	metaKeyID      = "keyid"
	segmentTimeout = 10 * time.Minute
)

func checkSegmentName(name string) error {
	if !segmentNamePattern.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("segment name %q: letters, digits, '.', '_' and '-' only, at most 128", name)
	}
	return nil
}

// keys are where a segment named name may be: encrypted or not (the key may have been set or
// removed since it was archived).
func (a *SegmentArchive) keys(name string) []string {
	plain := a.Store.Key(a.Dir, name+segmentSuffix)
	return []string{plain + encSuffix, plain}
}

// find returns the key and attributes of the stored segment named name.
func (a *SegmentArchive) find(ctx context.Context, name string) (string, *blob.Attributes, error) {
	for _, k := range a.keys(name) {
		attrs, err := a.Store.Bucket.Attributes(ctx, k)
		if err == nil {
			return k, attrs, nil
		}
		if gcerrors.Code(err) != gcerrors.NotFound {
			return "", nil, err
		}
	}
	return "", nil, fmt.Errorf("segment %s is not in the archive: %w", name, errNotFound)
}

var errNotFound = errors.New("not found")

// IsSegmentMissing reports whether err says a segment is not in the archive.
func IsSegmentMissing(err error) bool { return errors.Is(err, errNotFound) }

// Put archives the segment named name with src's content. It reads src twice (its hash first, so
// that the idempotence check needs no upload), so src is a file or another seekable source.
func (a *SegmentArchive) Put(ctx context.Context, name string, src io.ReadSeeker) error {
	ctx, cancel := context.WithTimeout(ctx, segmentTimeout)
	defer cancel()
	if err := checkSegmentName(name); err != nil {
		return err
	}
	h := sha256.New()
	size, err := io.Copy(h, io.LimitReader(src, MaxSegmentBytes+1))
	if err != nil {
		return fmt.Errorf("reading segment %s: %w", name, err)
	}
	if size > MaxSegmentBytes {
		return fmt.Errorf("segment %s has more than %d bytes", name, MaxSegmentBytes)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch _, attrs, err := a.find(ctx, name); {
	case err == nil && attrs.Metadata[metaSHA256] == sum:
		return nil // archived already: a retry after a lost answer
	case err == nil:
		return fmt.Errorf("%w: %s (stored sha256 %s, size %s; this one %s, size %d)", ErrSegmentConflict, name,
			attrs.Metadata[metaSHA256], attrs.Metadata[metaSize], sum, size)
	case !IsSegmentMissing(err):
		return err
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	key := a.keys(name)[1]
	meta := map[string]string{metaSHA256: sum, metaSize: strconv.FormatInt(size, 10)}
	if a.Key != nil {
		key = a.keys(name)[0]
		meta[metaKeyID] = KeyID(a.Key)
	}
	wctx, abort := context.WithCancel(ctx)
	defer abort()
	bw, err := a.Store.Bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream", Metadata: meta})
	if err != nil {
		return err
	}
	var sink io.Writer = bw
	var enc *encryptWriter
	if a.Key != nil {
		if enc, err = newEncryptWriter(bw, a.Key); err != nil {
			abort()
			_ = bw.Close()
			return err
		}
		sink = enc
	}
	// The fastest level: the primary compresses every segment it writes, and at the default level
	// the archiver cost a core for every 20 MB/s of WAL (make bench-pitr, docs/backups.md).
	gz, _ := gzip.NewWriterLevel(sink, gzip.BestSpeed)
	_, err = io.WriteString(gz, segmentHeader+name+"\n")
	if err == nil {
		var n int64
		n, err = io.Copy(gz, src)
		if err == nil && n != size {
			err = fmt.Errorf("segment %s changed while it was archived (%d bytes, then %d)", name, size, n)
		}
	}
	if err == nil {
		err = gz.Close()
	}
	if err == nil && enc != nil {
		err = enc.Close()
	}
	if err != nil {
		abort() // cancelling the writer's context aborts the upload
		_ = bw.Close()
		return err
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("completing segment %s: %w", name, err)
	}
	return nil
}

// Get writes the segment named name to w and checks it on the way: the name in its header, its
// size and its sha256, and with a key its authentication. On an error w may have received part of
// it: write to a temporary file and keep it only when Get returns nil.
func (a *SegmentArchive) Get(ctx context.Context, name string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, segmentTimeout)
	defer cancel()
	if err := checkSegmentName(name); err != nil {
		return err
	}
	key, attrs, err := a.find(ctx, name)
	if err != nil {
		return err
	}
	encrypted := strings.HasSuffix(key, encSuffix)
	switch {
	case encrypted && a.Key == nil:
		return fmt.Errorf("%w: segment %s is encrypted (key id %s) and no key was given", ErrWrongKey, name, attrs.Metadata[metaKeyID])
	case encrypted && attrs.Metadata[metaKeyID] != KeyID(a.Key):
		return fmt.Errorf("%w: segment %s has key id %s, the key's is %s", ErrWrongKey, name, attrs.Metadata[metaKeyID], KeyID(a.Key))
	}
	size, err := strconv.ParseInt(attrs.Metadata[metaSize], 10, 64)
	if err != nil || size < 0 || size > MaxSegmentBytes {
		return fmt.Errorf("%w: segment %s says its size is %q", ErrCorrupt, name, attrs.Metadata[metaSize])
	}
	br, err := a.Store.Bucket.NewReader(ctx, key, nil)
	if err != nil {
		return err
	}
	defer br.Close()
	var src io.Reader = br
	if encrypted {
		if src, err = newDecryptReader(br, a.Key); err != nil {
			return fmt.Errorf("%w: segment %s: %v", ErrCorrupt, name, err)
		}
	}
	gz, err := gzip.NewReader(src)
	if err != nil {
		return fmt.Errorf("%w: segment %s: %v", ErrCorrupt, name, err)
	}
	plain := bufio.NewReader(io.LimitReader(gz, int64(len(segmentHeader)+len(name)+1)+size+1))
	header, err := plain.ReadString('\n')
	if err != nil || header != segmentHeader+name+"\n" {
		return fmt.Errorf("%w: the object stored as segment %s holds another (%q)", ErrCorrupt, name, strings.TrimSpace(header))
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), plain)
	if err != nil {
		return fmt.Errorf("%w: segment %s: %v", ErrCorrupt, name, err)
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != attrs.Metadata[metaSHA256] {
		return fmt.Errorf("%w: segment %s is not what was archived (%d bytes, sha256 %s; archived %d, %s)", ErrCorrupt, name,
			n, hex.EncodeToString(h.Sum(nil)), size, attrs.Metadata[metaSHA256])
	}
	return nil
}

// Delete removes the segment named name (encrypted or not). A segment that is not there is no
// error: retention that stopped halfway runs again.
func (a *SegmentArchive) Delete(ctx context.Context, name string) error {
	if err := checkSegmentName(name); err != nil {
		return err
	}
	for _, k := range a.keys(name) {
		if err := a.Store.Bucket.Delete(ctx, k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return err
		}
	}
	return nil
}

// List returns the names of the archived segments, sorted. An object that is not a segment
// (another name under Dir) is left out.
func (a *SegmentArchive) List(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, segmentTimeout)
	defer cancel()
	prefix := a.Store.Key(a.Dir) + "/"
	it := a.Store.Bucket.List(&blob.ListOptions{Prefix: prefix})
	var names []string
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(obj.Key, prefix)
		name, ok := strings.CutSuffix(strings.TrimSuffix(name, encSuffix), segmentSuffix)
		if ok && checkSegmentName(name) == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}
