package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"gocloud.dev/blob"

	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// recorder is a loopback HTTP server that counts what reaches it and answers nothing useful: a
// place a forged credential would send the operator.
type recorder struct {
	*httptest.Server
	hits atomic.Int32
	body atomic.Value // the last request's body
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(req.Body, 1<<16))
		r.body.Store(string(b))
		r.hits.Add(1)
		http.Error(w, "no", http.StatusForbidden)
	}))
	t.Cleanup(r.Close)
	return r
}

// roundTrip writes an object bigger than one upload chunk under the store's prefix, reads it back
// and lists it: what a backup does with a store.
func roundTrip(t *testing.T, s *store.Store) string {
	t.Helper()
	ctx := context.Background()
	if err := s.Probe(ctx, "test"); err != nil {
		t.Fatalf("probe: %v", err)
	}
	data := make([]byte, 20<<20)
	_, _ = rand.Read(data)
	key := s.Key("shop", "orders", "b1", "data.archive")
	if err := s.Bucket.WriteAll(ctx, key, data, nil); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := s.Bucket.ReadAll(ctx, key)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d of %d bytes, equal %v (%v)", len(got), len(data), bytes.Equal(got, data), err)
	}
	it := s.Bucket.List(&blob.ListOptions{Prefix: s.Key("shop") + "/"})
	var listed []string
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		listed = append(listed, o.Key)
	}
	if len(listed) != 1 || listed[0] != key {
		t.Fatalf("listed %v, want [%s]", listed, key)
	}
	return key
}

// A gs:// store with a service account key works against Cloud Storage's API (fake-gcs-server,
// a stand-in: Google cannot be reached from here), and the key signs its own tokens: the
// token_uri the key file names is never called.
func TestAGCSStoreWithAServiceAccountKey(t *testing.T) {
	f := testenv.StartFakeGCS(t)
	tokens := newRecorder(t)
	s, err := store.Open(context.Background(), f.URL(), "team-a",
		map[string][]byte{store.KeyGoogleCredentials: testenv.ServiceAccountKey(t, tokens.URL)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := roundTrip(t, s)
	// The emulator holds the object, by its own API.
	resp, err := http.Get(f.Endpoint + "/storage/v1/b/" + f.Bucket + "/o/" + url.PathEscape(key))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var obj struct {
		Size string `json:"size"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&obj); err != nil || obj.Size != fmt.Sprint(20<<20) {
		t.Errorf("the emulator holds %s: size %q (%v)", key, obj.Size, err)
	}
	if n := tokens.hits.Load(); n != 0 {
		t.Errorf("the key file's token_uri was called %d times", n)
	}
}

// A credentials file is the tenant's. One that is not a service account key is refused before
// anything reads or sends what it points at: an "external_account" file would have Google's
// general loader read a file of the operator's pod (its ServiceAccount token) and send it to a
// token_url of the tenant's choosing; an "authorized_user" file posts a refresh token to its own
// token_uri.
func TestAForgedGoogleCredentialReachesNothing(t *testing.T) {
	f := testenv.StartFakeGCS(t)
	tokens := newRecorder(t)
	secret := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secret, []byte("the operator's own token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]map[string]any{
		"external_account": {"type": "external_account", "audience": "//iam.googleapis.com/x",
			"subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": tokens.URL,
			"credential_source": map[string]string{"file": secret}},
		"authorized_user": {"type": "authorized_user", "client_id": "a", "client_secret": "b", "refresh_token": "c",
			"token_uri": tokens.URL},
	} {
		b, _ := json.Marshal(file)
		s, err := store.Open(context.Background(), f.URL(), "team-a", map[string][]byte{store.KeyGoogleCredentials: b})
		if err == nil {
			err = s.Probe(context.Background(), "test")
			s.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "is not a service account key") {
			t.Errorf("%s: %v, want a refusal that names the key", name, err)
		}
	}
	if n := tokens.hits.Load(); n != 0 {
		t.Errorf("the forged files' token endpoint was called %d times (last body %q)", n, tokens.body.Load())
	}
}

// An azblob:// store takes a storage account with its shared key or a SAS token, against Azure's
// API (Azurite, Microsoft's emulator: it checks both as Azure does); a wrong key is refused.
func TestAnAzureStoreWithAKeyOrASASToken(t *testing.T) {
	ctx := context.Background()
	a := testenv.StartAzurite(t)
	s, err := store.Open(ctx, a.URL(), "team-a", map[string][]byte{store.KeyAzureAccount: []byte(testenv.AzuriteAccount),
		store.KeyAzureKey: []byte(testenv.AzuriteKey)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := roundTrip(t, s)
	// The emulator holds the object, by an administrator's client.
	props, err := a.AdminClient(t).NewBlobClient(key).GetProperties(ctx, nil)
	if err != nil || props.ContentLength == nil || *props.ContentLength != 20<<20 {
		t.Errorf("the container holds %s: %v (%v)", key, props.ContentLength, err)
	}

	sasURL, err := a.AdminClient(t).GetSASURL(sas.ContainerPermissions{Read: true, Add: true, Create: true, Write: true, Delete: true, List: true},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(sasURL)
	s2, err := store.Open(ctx, a.URL(), "team-b", map[string][]byte{store.KeyAzureAccount: []byte(testenv.AzuriteAccount),
		store.KeyAzureSASToken: []byte(u.RawQuery)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	roundTrip(t, s2)

	wrong := make([]byte, 64)
	_, _ = rand.Read(wrong)
	s3, err := store.Open(ctx, a.URL(), "team-c", map[string][]byte{store.KeyAzureAccount: []byte(testenv.AzuriteAccount),
		store.KeyAzureKey: []byte(base64.StdEncoding.EncodeToString(wrong))})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if err := s3.Probe(ctx, "test"); err == nil {
		t.Error("a wrong account key was accepted")
	}
}

// A store that names a credentials Secret never falls back to the ambient identity the policy
// checked it does not need: a Secret without the provider's keys (even an empty one) is an error
// that names them.
func TestANamedSecretIsNeverTheAmbientIdentity(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"s3://bucket?region=eu-west-1", "needs both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{"gs://bucket", "needs GOOGLE_APPLICATION_CREDENTIALS_JSON"},
		{"azblob://container", "needs AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN"},
	} {
		for _, creds := range []map[string][]byte{{}, {"unrelated": []byte("x")}} {
			_, err := store.Open(context.Background(), c.url, "", creds)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s with a Secret of %d keys: %v, want %q", c.url, len(creds), err, c.want)
			}
		}
	}
}

// The policy checks a store URL's first domain; a second one must not be the one the store uses.
func TestAnAzureStoreTakesEachParameterOnce(t *testing.T) {
	creds := map[string][]byte{store.KeyAzureAccount: []byte(testenv.AzuriteAccount), store.KeyAzureKey: []byte(testenv.AzuriteKey)}
	if err := (store.Policy{Endpoints: []string{"127.0.0.1:10000"}}).Check("azblob://c?domain=127.0.0.1:10000&domain=evil.example:443", true); err != nil {
		t.Fatalf("the policy should admit the first domain (the test's premise): %v", err)
	}
	_, err := store.Open(context.Background(), "azblob://c?domain=127.0.0.1:10000&domain=evil.example:443&protocol=http", "", creds)
	if err == nil || !strings.Contains(err.Error(), `names "domain" more than once`) {
		t.Errorf("two domains: %v, want a refusal", err)
	}
}
