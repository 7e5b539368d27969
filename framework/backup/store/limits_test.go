package store_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

// hostileS3 is a stand-in for an S3 endpoint that misbehaves on purpose, which no real store does:
// it accepts every write and answers every read with what body says. Named as such: MinIO is the
// real store of the other tests.
func hostileS3(t *testing.T, body func(w http.ResponseWriter, r *http.Request)) *store.Store {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("ETag", `"0"`)
		case http.MethodGet:
			body(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	s, err := store.Open(context.Background(), "s3://bucket?endpoint="+srv.URL+"&use_path_style=true&region=us-east-1", "p",
		map[string][]byte{"AWS_ACCESS_KEY_ID": []byte("id"), "AWS_SECRET_ACCESS_KEY": []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// endless streams zeros until the client goes away, without a length.
func endless(w http.ResponseWriter, r *http.Request) {
	chunk := make([]byte, 64<<10)
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// huge claims a length no manifest or probe has, then streams.
func huge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(8<<30))
	endless(w, r)
}

// A store whose objects stream without end, or claim gigabytes, fails the probe and the
// manifest read with ErrTooLarge after a bounded read; before, both were read whole into the
// operator's memory (review H5).
func TestReadsFromAStoreAreBounded(t *testing.T) {
	for name, body := range map[string]func(http.ResponseWriter, *http.Request){"endless": endless, "huge": huge} {
		t.Run(name, func(t *testing.T) {
			s := hostileS3(t, body)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Probe(ctx, "test"); !errors.Is(err, store.ErrTooLarge) {
				t.Errorf("probe: %v, want ErrTooLarge", err)
			}
			if _, err := backup.ReadManifest(ctx, s, "backups/b1"); !errors.Is(err, store.ErrTooLarge) {
				t.Errorf("manifest: %v, want ErrTooLarge", err)
			}
		})
	}
}

// A store that sends a byte now and then is given up on at the caller's deadline.
func TestASlowStoreMeetsTheDeadline(t *testing.T) {
	s := hostileS3(t, func(w http.ResponseWriter, r *http.Request) {
		for r.Context().Err() == nil {
			_, _ = w.Write([]byte("{"))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := backup.ReadManifest(ctx, s, "backups/b1")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") {
		t.Errorf("manifest from a slow store: %v, want the deadline", err)
	}
}
