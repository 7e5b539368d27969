package job

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	fwagent "github.com/datafleet-dev/datafleet/framework/agent"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/catalog"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// TerminationLog is where the kubelet reads a container's termination message.
const TerminationLog = "/dev/termination-log"

// Params are a Job's arguments, parsed.
type Params struct {
	Mode, Engine, StoreURL, StorePrefix, Dir, Version, Backup string
	// Method is backup.MethodPhysical for a base backup, else empty (the engine's dump).
	Method      string
	Instance    *v1alpha1.ServiceInstance
	Key         []byte
	Credentials map[string][]byte
	// Deadline is the Job's activeDeadlineSeconds: the process stops itself a little before, so
	// that it reports DeadlineExceeded rather than being killed without a word.
	Deadline time.Duration
	// ReachTimeout bounds the wait for the instance to answer (reach); 0 is DefaultReachTimeout.
	ReachTimeout time.Duration
}

// ParseArgs reads "dump|load --flags" and the environment.
func ParseArgs(args []string, getenv func(string) string) (Params, error) {
	var p Params
	if len(args) == 0 || (args[0] != ModeDump && args[0] != ModeLoad) {
		return p, errors.New("usage: manager backup dump|load --engine E --store-url U --dir D --version V [--store-prefix P] [--backup B]")
	}
	p.Mode = args[0]
	fs := flag.NewFlagSet("backup "+p.Mode, flag.ContinueOnError)
	fs.StringVar(&p.Engine, "engine", "", "engine of the instance")
	fs.StringVar(&p.StoreURL, "store-url", "", "gocloud.dev/blob URL of the store")
	fs.StringVar(&p.StorePrefix, "store-prefix", "", "prefix of every key in the store")
	fs.StringVar(&p.Dir, "dir", "", "the backup's directory under the prefix")
	fs.StringVar(&p.Version, "version", "", "the instance's engine version")
	fs.StringVar(&p.Backup, "backup", "", "the Backup's name, for the manifest")
	fs.DurationVar(&p.Deadline, "deadline", 0, "the Job's deadline (activeDeadlineSeconds); 0: none")
	fs.StringVar(&p.Method, "method", "", "Physical: a base backup; empty: the engine's dump")
	if err := fs.Parse(args[1:]); err != nil {
		return p, err
	}
	if p.Method != "" && (p.Method != backup.MethodPhysical || p.Mode != ModeDump) {
		return p, fmt.Errorf("--method %q: only a dump may be %s", p.Method, backup.MethodPhysical)
	}
	if p.Engine == "" || p.StoreURL == "" || p.Dir == "" || p.Version == "" {
		return p, errors.New("--engine, --store-url, --dir and --version are required")
	}
	p.Instance = &v1alpha1.ServiceInstance{}
	if err := json.Unmarshal([]byte(getenv(EnvInstance)), p.Instance); err != nil || p.Instance.Name == "" {
		return p, fmt.Errorf("$%s must hold the instance as JSON: %v", EnvInstance, err)
	}
	if k := getenv(EnvKey); k != "" {
		p.Key = []byte(k)
	}
	p.Credentials = map[string][]byte{}
	for _, k := range store.CredentialKeys {
		if v := getenv(k); v != "" {
			p.Credentials[k] = []byte(v)
		}
	}
	if len(p.Credentials) == 0 && getenv(EnvCredentialsSecret) == "" {
		p.Credentials = nil // no Secret named: the store's ambient credentials (store.Open)
	}
	return p, nil
}

// Run carries out a dump or a load and returns its Result; the error is nil only on success. With
// a Deadline it stops itself a little before it and says so (DeadlineExceeded).
func Run(ctx context.Context, p Params, b engine.Backuper, getenv func(string) string) (Result, error) {
	rctx, cancel := withDeadline(ctx, p.Deadline)
	defer cancel()
	res, err := run(rctx, p, b, getenv)
	if err != nil && errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return fail(ReasonDeadlineExceeded, fmt.Errorf("stopped after %s, the %s's timeout (%s: %s)", p.Deadline, componentOf(p.Mode), res.Reason, res.Message))
	}
	return res, err
}

func run(ctx context.Context, p Params, b engine.Backuper, getenv func(string) string) (Result, error) {
	s, err := store.Open(ctx, p.StoreURL, p.StorePrefix, p.Credentials)
	if err != nil {
		return fail(ReasonStoreUnreachable, err)
	}
	defer s.Close()
	target := engine.BackupTarget{Instance: p.Instance, Getenv: getenv}
	if err := reach(ctx, b, target, p.ReachTimeout); err != nil {
		return fail(ReasonEngineUnreachable, err)
	}
	if p.Mode == ModeDump {
		return dump(ctx, p, s, b, target)
	}
	return load(ctx, p, s, b, target)
}

func fail(reason string, err error) (Result, error) {
	return Result{Reason: reason, Message: err.Error()}, err
}

func dump(ctx context.Context, p Params, s *store.Store, b engine.Backuper, t engine.BackupTarget) (Result, error) {
	source, _ := json.Marshal(p.Instance.Spec)
	m := backup.Manifest{Engine: p.Engine, EngineVersion: p.Version, Namespace: p.Instance.Namespace,
		Instance: p.Instance.Name, Backup: p.Backup, Source: source, Method: backup.MethodLogical}
	take := func(ctx context.Context, w io.Writer) error { return b.Dump(ctx, t, w) }
	if p.Method == backup.MethodPhysical {
		pb, ok := b.(engine.PhysicalBackuper)
		if !ok {
			return fail(ReasonInvalid, fmt.Errorf("engine %q takes no physical backups", p.Engine))
		}
		// Write records the manifest after the data: Base is filled in by then.
		m.Method, m.Base = backup.MethodPhysical, &fwagent.BaseBackupInfo{}
		take = func(ctx context.Context, w io.Writer) error {
			info, err := pb.BaseBackup(ctx, t, w)
			*m.Base = info
			return err
		}
	}
	m, err := backup.Write(ctx, s, p.Dir, m, p.Key, take)
	if err != nil {
		return fail(ReasonDumpFailed, err)
	}
	return Result{Reason: ReasonCompleted, Message: fmt.Sprintf("%d bytes stored (%d dumped), sha256 %s", m.Size, m.RawSize, m.SHA256)}, nil
}

// load checks the backup before anything is touched: complete, of this engine, not from a newer
// version, the right key, the checksum.
func load(ctx context.Context, p Params, s *store.Store, b engine.Backuper, t engine.BackupTarget) (Result, error) {
	m, err := backup.ReadManifest(ctx, s, p.Dir)
	if errors.Is(err, backup.ErrIncomplete) {
		return fail(ReasonIncomplete, err)
	}
	if err != nil {
		return fail(ReasonStoreUnreachable, err)
	}
	// Nothing of the manifest is believed before it is authenticated.
	if err := backup.Authenticate(m, p.Key); err != nil {
		return fail(AuthReason(err), err)
	}
	if r, err := Compatible(m.Engine, m.EngineVersion, p.Engine, p.Version); err != nil {
		return fail(r, err)
	}
	if m.Method == backup.MethodPhysical {
		// Its restore is a new instance's bootstrap from the store plus the archived log, not a
		// load into a running one (issue #27, next step).
		return fail(ReasonPhysical, errors.New("this is a physical backup (a base backup); restoring one into a running instance is not possible, and restoring it into a new instance is not built yet: restore a Logical backup"))
	}
	if err := backup.Verify(ctx, s, p.Dir, m, p.Key); err != nil {
		switch {
		case errors.Is(err, backup.ErrCorrupt):
			return fail(ReasonChecksumMismatch, err)
		case errors.Is(err, backup.ErrWrongKey), errors.Is(err, backup.ErrUnauthenticated):
			return fail(AuthReason(err), err)
		}
		return fail(ReasonStoreUnreachable, err)
	}
	r, err := backup.Open(ctx, s, p.Dir, m, p.Key)
	if err != nil {
		return fail(ReasonLoadFailed, err)
	}
	defer r.Close()
	summary, err := b.Load(ctx, t, r)
	if err != nil {
		if errors.Is(err, backup.ErrCorrupt) {
			return fail(ReasonChecksumMismatch, err)
		}
		return fail(ReasonLoadFailed, err)
	}
	return Result{Reason: ReasonCompleted, Message: summary}, nil
}

// AuthReason is the reason for an error of backup.Authenticate.
func AuthReason(err error) string {
	switch {
	case errors.Is(err, backup.ErrWrongKey):
		return ReasonWrongKey
	case errors.Is(err, backup.ErrUnauthenticated):
		return ReasonUnauthenticated
	}
	return ReasonLoadFailed
}

// withDeadline gives the run its deadline's worth, less a margin in which to report (a tenth of
// it, at most 30 s): the kubelet kills the pod at the deadline itself.
func withDeadline(ctx context.Context, deadline time.Duration) (context.Context, context.CancelFunc) {
	if deadline <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, deadline-min(deadline/10, 30*time.Second))
}

func componentOf(mode string) string {
	if mode == ModeLoad {
		return ComponentRestore
	}
	return ComponentBackup
}

// Compatible refuses a backup of another engine, or from a newer version than the target runs.
func Compatible(backupEngine, backupVersion, engine, version string) (string, error) {
	if backupEngine != engine {
		return ReasonEngineMismatch, fmt.Errorf("the backup is of a %s instance; it cannot be restored into %s", backupEngine, engine)
	}
	if catalog.CompareVersions(backupVersion, version) > 0 {
		return ReasonVersionDowngrade, fmt.Errorf("the backup is from %s %s, newer than the target's %s: restoring into an older version is refused; restore into an instance of %s or later",
			engine, backupVersion, version, backupVersion)
	}
	return "", nil
}

// Main is "manager backup ...": it runs the Job and writes its Result to the termination log.
func Main(ctx context.Context, args []string, engines map[string]engine.Engine) error {
	p, err := ParseArgs(args, os.Getenv)
	var res Result
	switch e, _ := engines[p.Engine].(engine.Backuper); {
	case err != nil:
		res, err = fail(ReasonInvalid, err)
	case e == nil:
		res, err = fail(ReasonInvalid, fmt.Errorf("engine %q has no backups in this build", p.Engine))
	default:
		res, err = Run(ctx, p, e, os.Getenv)
	}
	b, _ := json.Marshal(res)
	if werr := os.WriteFile(TerminationLog, b, 0o644); werr != nil {
		fmt.Fprintln(os.Stderr, string(b))
	}
	fmt.Println(res.Reason + ": " + res.Message)
	return err
}
