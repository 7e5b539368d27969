package rabbitmq

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/datafleet-dev/datafleet/framework/bounded"
	"github.com/datafleet-dev/datafleet/framework/engine"
)

// A stand-in for a management API that answers without end (no real broker does; the real one is
// in the other tests): the call fails with ErrTooLarge, named, after a bounded read.
func TestAManagementAnswerIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`[`))
		entry := []byte(strings.Repeat(`{"name":"u"},`, 4096))
		for r.Context().Err() == nil {
			if _, err := w.Write(entry); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	var users []struct{ Name string }
	_, err := management{base: srv.URL, user: AdminUser, password: "p"}.get(context.Background(), "/api/users?columns=name", &users)
	if !errors.Is(err, bounded.ErrTooLarge) || !strings.Contains(err.Error(), "/api/users") {
		t.Fatalf("an endless listing: %v, want ErrTooLarge naming the call", err)
	}
}

// A stand-in for a broker whose definitions export does not end (no real broker's is that large
// here): a backup refuses it past maxDefinitions rather than store what no restore could hold,
// and a restore's check, which decodes the export as it reads it, fails the same way.
func TestADefinitionsExportIsBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"queues":[`))
		entry := []byte(strings.Repeat(`{"name":"q","vhost":"/","durable":true,"arguments":{}},`, 1024))
		for r.Context().Err() == nil {
			if _, err := w.Write(entry); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	m := management{base: srv.URL, user: AdminUser, password: "p"}
	e := Engine{management: func(*corev1.Pod, string) management { return m }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.Dump(ctx, engine.BackupTarget{Getenv: func(string) string { return "p" }}, io.Discard)
	if !errors.Is(err, bounded.ErrTooLarge) {
		t.Errorf("a backup of an endless export: %v, want ErrTooLarge", err)
	}
	var got objects
	if err := m.decode(ctx, "/api/definitions", &got, maxDefinitions); !errors.Is(err, bounded.ErrTooLarge) {
		t.Errorf("a check reading an endless export: %v, want ErrTooLarge", err)
	}
}
