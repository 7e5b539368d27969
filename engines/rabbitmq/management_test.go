package rabbitmq

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/framework/bounded"
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
