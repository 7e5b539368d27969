package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/blob"

	"github.com/datafleet-dev/datafleet/framework/backup"
	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// stores are the stores every artefact test runs against: a real MinIO server (s3://) and a
// directory (file://).
func stores(t *testing.T) map[string]*store.Store {
	t.Helper()
	m := testenv.StartMinIO(t)
	out := map[string]*store.Store{}
	for name, open := range map[string]func() (*store.Store, error){
		"minio": func() (*store.Store, error) {
			return store.Open(context.Background(), m.URL(), "team-a", m.Credentials())
		},
		"file": func() (*store.Store, error) {
			return store.Open(context.Background(), "file://"+t.TempDir(), "team-a", nil)
		},
	} {
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out[name] = s
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		// Half random, half repeated: compressible, like real dumps.
		if i%2 == 0 {
			b[i] = byte(rand.IntN(256))
		} else {
			b[i] = 'x'
		}
	}
	return b
}

func dumpOf(data []byte) backup.Dump {
	return func(_ context.Context, w io.Writer) error {
		for b := data; len(b) > 0; {
			n := min(len(b), 1+rand.IntN(200<<10))
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}
}

func restore(s *store.Store, dir string, key []byte) ([]byte, error) {
	ctx := context.Background()
	m, err := backup.ReadManifest(ctx, s, dir)
	if err != nil {
		return nil, err
	}
	if err := backup.Verify(ctx, s, dir, m, key); err != nil {
		return nil, err
	}
	r, err := backup.Open(ctx, s, dir, m, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// flipByte changes one byte of an object in place, as bit rot or tampering would.
func flipByte(t *testing.T, b *blob.Bucket, key string, at int) {
	t.Helper()
	ctx := context.Background()
	data, err := b.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data[at%len(data)] ^= 0x01
	if err := b.WriteAll(ctx, key, data, nil); err != nil {
		t.Fatal(err)
	}
}

// In a store with a key, a manifest changed in the store (its spec, its checksum), or one without
// a MAC (format 1), or without encryption, is refused before any data is read. In any store, a
// manifest whose data is not the backup's own object (../another/data.gz) is refused.
func TestKeyedStoresAuthenticateManifests(t *testing.T) {
	ctx := context.Background()
	key := []byte("0123456789abcdef0123456789abcdef")
	s := stores(t)["file"]
	for _, dir := range []string{"ns/inst/a", "ns/inst/b"} {
		if _, err := backup.Write(ctx, s, dir, backup.Manifest{Engine: "postgres", Source: []byte(`{"replicas":1}`)}, key, dumpOf(randomBytes(1000))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := restore(s, "ns/inst/a", key); err != nil {
		t.Fatalf("an untouched backup: %v", err)
	}
	for name, change := range map[string]func(m map[string]any){
		"its spec": func(m map[string]any) {
			m["source"] = map[string]any{"replicas": 5, "parameters": map[string]any{"x": "y"}}
		},
		"its checksum":      func(m map[string]any) { m["sha256"] = strings.Repeat("0", 64) },
		"no MAC (format 1)": func(m map[string]any) { delete(m, "mac"); m["format"] = 1 },
		"not encrypted":     func(m map[string]any) { delete(m, "encryption") },
	} {
		t.Run(name, func(t *testing.T) {
			dir := "ns/inst/a-" + strings.ReplaceAll(name, " ", "-")
			b, _ := s.Bucket.ReadAll(ctx, s.Key("ns/inst/a", backup.ManifestName))
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			change(m)
			b, _ = json.Marshal(m)
			data, _ := s.Bucket.ReadAll(ctx, s.Key("ns/inst/a", "data.gz.enc"))
			for k, v := range map[string][]byte{backup.ManifestName: b, "data.gz.enc": data} {
				if err := s.Bucket.WriteAll(ctx, s.Key(dir, k), v, nil); err != nil {
					t.Fatal(err)
				}
			}
			mf, err := backup.ReadManifest(ctx, s, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := backup.Authenticate(mf, key); !errors.Is(err, backup.ErrUnauthenticated) {
				t.Errorf("a manifest with %s changed: %v, want ErrUnauthenticated", name, err)
			}
			if _, err := restore(s, dir, key); !errors.Is(err, backup.ErrUnauthenticated) {
				t.Errorf("restoring it: %v, want ErrUnauthenticated", err)
			}
		})
	}
	b, _ := s.Bucket.ReadAll(ctx, s.Key("ns/inst/a", backup.ManifestName))
	b = bytes.Replace(b, []byte(`"data.gz.enc"`), []byte(`"../b/data.gz.enc"`), 1)
	if err := s.Bucket.WriteAll(ctx, s.Key("ns/inst/elsewhere", backup.ManifestName), b, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.ReadManifest(ctx, s, "ns/inst/elsewhere"); err == nil || !strings.Contains(err.Error(), "not an object a backup writes") {
		t.Errorf("a manifest naming another backup's data: %v", err)
	}
}

func TestArtefacts(t *testing.T) {
	ctx := context.Background()
	key := []byte("0123456789abcdef0123456789abcdef")
	data := randomBytes(3<<20 + 11)
	for name, s := range stores(t) {
		for _, encrypted := range []bool{false, true} {
			var k []byte
			if encrypted {
				k = key
			}
			t.Run(fmt.Sprintf("%s/encrypted=%v", name, encrypted), func(t *testing.T) {
				dir := fmt.Sprintf("ns/inst/bk-%v", encrypted)
				m, err := backup.Write(ctx, s, dir, backup.Manifest{Engine: "postgres", EngineVersion: "17.2"}, k, dumpOf(data))
				if err != nil {
					t.Fatal(err)
				}
				if m.RawSize != int64(len(data)) || m.Size == 0 || m.Size >= m.RawSize || len(m.SHA256) != 64 {
					t.Fatalf("manifest sizes: %+v", m)
				}
				// The objects are under the store's prefix.
				if ok, _ := s.Bucket.Exists(ctx, "team-a/"+dir+"/"+backup.ManifestName); !ok {
					t.Fatal("the manifest is not under the store's prefix")
				}
				got, err := restore(s, dir, k)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("round trip: %d bytes, err %v", len(got), err)
				}

				if !encrypted {
					// In a store with a key, an unencrypted backup is not the key's: whoever can
					// write to the store could have put it there (a downgrade).
					if _, err := restore(s, dir, key); !errors.Is(err, backup.ErrUnauthenticated) {
						t.Fatalf("an unencrypted backup with a key given: %v, want ErrUnauthenticated", err)
					}
				}
				if encrypted {
					if _, err := restore(s, dir, []byte("another key of enough length")); !errors.Is(err, backup.ErrWrongKey) {
						t.Fatalf("wrong key: got %v", err)
					}
					if _, err := restore(s, dir, nil); !errors.Is(err, backup.ErrWrongKey) {
						t.Fatalf("an encrypted backup without a key: %v", err)
					}
				}

				// Data changed after Verify read it fails the restore's stream instead of ending it early.
				if err := backup.Verify(ctx, s, dir, m, k); err != nil {
					t.Fatal(err)
				}
				flipByte(t, s.Bucket, s.Key(dir, m.Data), int(m.Size/3))
				r, err := backup.Open(ctx, s, dir, m, k)
				if err == nil {
					_, err = io.ReadAll(r)
					r.Close()
				}
				if err == nil {
					t.Fatal("data changed after Verify was restored without an error")
				}

				// One changed byte anywhere is refused before any data is handed out.
				for _, at := range []int{0, int(m.Size / 2), int(m.Size - 1)} {
					copyDir := fmt.Sprintf("%s-copy%d", dir, at)
					if _, err := backup.Write(ctx, s, copyDir, backup.Manifest{}, k, dumpOf(data)); err != nil {
						t.Fatal(err)
					}
					mc, _ := backup.ReadManifest(ctx, s, copyDir)
					flipByte(t, s.Bucket, s.Key(copyDir, mc.Data), at)
					_, err := restore(s, copyDir, k)
					if !errors.Is(err, backup.ErrCorrupt) {
						t.Fatalf("byte %d changed: got %v, want ErrCorrupt", at, err)
					}
					t.Logf("byte %d changed: %v", at, err)
				}
			})
		}

		t.Run(name+"/failed dump leaves nothing that looks complete", func(t *testing.T) {
			dir := "ns/inst/failed"
			_, err := backup.Write(ctx, s, dir, backup.Manifest{}, nil, func(ctx context.Context, w io.Writer) error {
				if _, err := w.Write(randomBytes(2 << 20)); err != nil {
					return err
				}
				return errors.New("pg_dump: connection lost")
			})
			if err == nil {
				t.Fatal("a failed dump reported success")
			}
			if _, err := backup.ReadManifest(ctx, s, dir); !errors.Is(err, backup.ErrIncomplete) {
				t.Fatalf("manifest of a failed backup: %v", err)
			}
			it := s.Bucket.List(&blob.ListOptions{Prefix: s.Key(dir) + "/"})
			if obj, err := it.Next(ctx); err != io.EOF {
				t.Fatalf("a failed backup left %v (%v)", obj, err)
			}
		})

		t.Run(name+"/probe", func(t *testing.T) {
			if err := s.Probe(ctx, "test"); err != nil {
				t.Fatal(err)
			}
			// Two BackupStores on one bucket and prefix (two namespaces', two clusters') probe
			// side by side without failing each other.
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for _, id := range []string{"recovery/fleet", "shop/fleet"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						if err := s.Probe(ctx, id); err != nil {
							errs <- fmt.Errorf("%s: %w", id, err)
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("probing side by side: %v", err)
			}
			it := s.Bucket.List(&blob.ListOptions{Prefix: s.Key(".datafleet-probe")})
			if obj, err := it.Next(ctx); err != io.EOF {
				t.Fatalf("the probe left %v (%v)", obj, err)
			}
		})
	}
}

func TestStoreRefusesBadCredentials(t *testing.T) {
	m := testenv.StartMinIO(t)
	ctx := context.Background()
	creds := m.Credentials()
	creds["AWS_SECRET_ACCESS_KEY"] = []byte("not-the-secret")
	s, err := store.Open(ctx, m.URL(), "", creds)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Probe(ctx, "test"); err == nil {
		t.Fatal("a probe with a wrong secret key succeeded")
	}
	if _, err := store.Open(ctx, m.URL(), "", map[string][]byte{"AWS_ACCESS_KEY_ID": []byte("x")}); err == nil {
		t.Fatal("opened with half a key")
	}
	if _, err := store.Open(ctx, "file:///tmp", "", map[string][]byte{"x": nil}); err == nil {
		t.Fatal("a file:// store took credentials")
	}
}
