package backup

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// The segment archive's command, which an engine's own archiver runs once per segment inside the
// pod: PostgreSQL's archive_command and restore_command are
//
//	manager segments push --config FILE [--system ID] %f %p
//	manager segments fetch --config FILE [--system ID] %f %p
//
// A process per segment, as the engine expects of its commands (barman-cloud-wal-archive and
// pgBackRest work the same way): its exit status is the answer, and nothing outlives it, nor
// outlasts its deadline (--timeout): the engine retries a segment whose command failed.
//
// --system puts the segments of one database system (PostgreSQL's system identifier) in a
// directory of their own under the configured one: an instance made again under an old name
// starts a new system and must not collide with the old one's segments.

// SegmentConfig is what the command needs to open the archive, a JSON file in the pod beside the
// mounted Secrets it names.
type SegmentConfig struct {
	// URL and Prefix are the BackupStore's; Dir is the instance's archive under the prefix.
	URL    string `json:"url"`
	Prefix string `json:"prefix,omitempty"`
	Dir    string `json:"dir"`
	// CredentialsDir is the store's credentials Secret, mounted (a file per key); empty: none.
	CredentialsDir string `json:"credentialsDir,omitempty"`
	// KeyFile is the encryption key, mounted; empty: segments are not encrypted.
	KeyFile string `json:"keyFile,omitempty"`
}

// DefaultSegmentTimeout bounds one segment's push or fetch: 16 MiB to an object store.
const DefaultSegmentTimeout = 5 * time.Minute

// maxConfigBytes bounds the config file and each credential file read.
const maxConfigBytes = 1 << 20

// OpenSegmentArchive opens the archive a SegmentConfig file describes.
func OpenSegmentArchive(ctx context.Context, configFile string) (*SegmentArchive, error) {
	raw, err := readFileLimited(configFile)
	if err != nil {
		return nil, err
	}
	var c SegmentConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", configFile, err)
	}
	a, err := openSegmentArchive(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configFile, err)
	}
	return a, nil
}

// openSegmentArchive opens the archive c describes, reading its mounted Secrets.
func openSegmentArchive(ctx context.Context, c SegmentConfig) (*SegmentArchive, error) {
	if c.URL == "" || c.Dir == "" {
		return nil, errors.New("no store URL or archive directory")
	}
	var creds map[string][]byte
	if c.CredentialsDir != "" {
		// The keys a store reads, and nothing else: the directory may hold other files (a
		// recovery's configuration and key share its volume), which are no credentials. The map
		// is never nil here: a named Secret without the keys is an error, not ambient credentials.
		creds = map[string][]byte{}
		for _, key := range store.CredentialKeys {
			v, err := readFileLimited(filepath.Join(c.CredentialsDir, key))
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return nil, err
			default:
				creds[key] = v
			}
		}
	}
	var key []byte
	if c.KeyFile != "" {
		var err error
		if key, err = readFileLimited(c.KeyFile); err != nil {
			return nil, err
		}
	}
	s, err := store.Open(ctx, c.URL, c.Prefix, creds)
	if err != nil {
		return nil, err
	}
	return &SegmentArchive{Store: s, Dir: c.Dir, Key: key}, nil
}

func readFileLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := bounded.ReadAll(f, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// SegmentsMain runs "segments push|fetch --config FILE NAME PATH". Push archives the file at
// PATH as segment NAME; fetch writes segment NAME to PATH, complete and verified or not at all.
// A segment that is not in the archive is an error that says so (a recovery's restore_command
// asks for segments past the archive's end, and is told no; any other failure is fetchFailed).
func SegmentsMain(ctx context.Context, args []string) (err error) {
	if len(args) == 0 || (args[0] != "push" && args[0] != "fetch") {
		return errors.New("usage: segments push|fetch --config FILE NAME PATH")
	}
	verb := args[0]
	if verb == "fetch" {
		defer func() {
			if err != nil && !IsSegmentMissing(err) {
				err = fetchFailed{err}
			}
		}()
	}
	fs := flag.NewFlagSet("segments "+verb, flag.ContinueOnError)
	config := fs.String("config", "", "the archive's configuration (JSON, see backup.SegmentConfig)")
	system := fs.String("system", "", "the database system's identifier (digits): its segments go in a directory of that name")
	timeout := fs.Duration("timeout", DefaultSegmentTimeout, "the most one segment may take")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *config == "" || fs.NArg() != 2 {
		return fmt.Errorf("usage: segments %s --config FILE [--system ID] NAME PATH", verb)
	}
	if *system != "" && strings.Trim(*system, "0123456789") != "" {
		return fmt.Errorf("--system %q: a system identifier is digits", *system)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	name, file := fs.Arg(0), fs.Arg(1)
	a, err := OpenSegmentArchive(ctx, *config)
	if err != nil {
		return err
	}
	if *system != "" {
		a.Dir = path.Join(a.Dir, *system)
	}
	defer a.Store.Close()
	if verb == "push" {
		return a.PutFile(ctx, name, file)
	}
	return a.Fetch(ctx, name, file)
}

// PutFile archives the file at path as the segment named name.
func (a *SegmentArchive) PutFile(ctx context.Context, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return a.Put(ctx, name, f)
}

// fetchFailed is a fetch that failed for another reason than the segment's absence (the store
// out of reach, a segment that does not verify, a configuration that cannot be read). The command exits with 128 for it, which
// PostgreSQL's recovery takes as an error to stop on (a status above 125) rather than as the
// archive's end, where it would end the replay and promote short of what the archive holds.
type fetchFailed struct{ error }

func (f fetchFailed) Unwrap() error { return f.error }

// ExitCode is the command's exit status.
func (fetchFailed) ExitCode() int { return 128 }

// ExitCode is the exit status a command that failed with err ends with: 1, or the one the error
// asks for.
func ExitCode(err error) int {
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}

// Fetch writes the segment named name to file, complete and verified or not at all.
func (a *SegmentArchive) Fetch(ctx context.Context, name, file string) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".fetching-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	err = a.Get(ctx, name, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
