package job_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/datafleet-dev/datafleet/api/v1alpha1"
	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/job"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// lateEngine is a fileEngine behind a TCP address on loopback: it is reached when something
// accepts there, as an instance is once the network plugin lets the Job's new pod through.
type lateEngine struct {
	fileEngine
	addr string
}

func (e lateEngine) Reach(ctx context.Context, _ engine.BackupTarget) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// A Job whose first connections are refused (its pod runs before the instance's NetworkPolicy
// admits it) waits and backs up once the instance answers; one that is never answered fails
// with EngineUnreachable, naming the refusal, and leaves no backup.
func TestAJobWaitsForTheInstanceToAnswer(t *testing.T) {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused until listened on again
	data := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(data, []byte("the rows"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := lateEngine{fileEngine{data}, addr}
	p := job.Params{Mode: job.ModeDump, StoreURL: "file://" + t.TempDir(), Engine: "postgres", Version: "17", Dir: "shop/orders/b1",
		Backup: "b1", Instance: &v1alpha1.ServiceInstance{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"}},
		ReachTimeout: 3 * time.Second}
	manifest := func(dir string) error {
		s, err := store.Open(ctx, p.StoreURL, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = backup.ReadManifest(ctx, s, dir)
		return err
	}

	res, err := job.Run(ctx, p, e, os.Getenv)
	if err == nil || res.Reason != job.ReasonEngineUnreachable || !strings.Contains(res.Message, "did not answer in 3s") ||
		!strings.Contains(res.Message, "connection refused") {
		t.Fatalf("never answered: %+v, %v", res, err)
	}
	if err := manifest(p.Dir); !errors.Is(err, backup.ErrIncomplete) {
		t.Fatalf("after an unanswered Job: %v, want no backup", err)
	}

	p.Dir, p.ReachTimeout = "shop/orders/b2", time.Minute
	go func() {
		time.Sleep(3 * time.Second)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { l.Close() })
	}()
	if res, err := job.Run(ctx, p, e, os.Getenv); err != nil || res.Reason != job.ReasonCompleted {
		t.Fatalf("answered after 3 s: %+v, %v", res, err)
	}
	if err := manifest(p.Dir); err != nil {
		t.Fatalf("the backup taken once the instance answered: %v", err)
	}
}
