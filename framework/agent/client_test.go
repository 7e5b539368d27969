package agent

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// Whatever answers at a pod's agent address (a rogue pod with the instance's labels, review L2)
// is read no further than a status can be: an endless answer fails that one status.
func TestAStatusIsReadNoFurtherThanAStatusCanBe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"role":"`))
		chunk := []byte(strings.Repeat("a", 64<<10))
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := Conn{Addr: strings.TrimPrefix(srv.URL, "http://"), legacy: true}.Status(context.Background())
	if !errors.Is(err, bounded.ErrTooLarge) {
		t.Fatalf("an endless status: %v, want ErrTooLarge", err)
	}
}
