package testenv

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// FakeGCSVersion is the fake-gcs-server module version tests run (hack/go-tool.sh builds it).
const FakeGCSVersion = "v1.56.1"

// FakeGCS is fake-gcs-server, an emulator of Cloud Storage's JSON API, on loopback with one empty
// bucket. It is a stand-in for Google's service (which cannot be reached from here): it answers
// the same API but checks no credentials.
type FakeGCS struct {
	Endpoint string // http://127.0.0.1:port
	Bucket   string
}

// URL is the gocloud.dev/blob URL of the bucket, sent to the emulator.
func (f *FakeGCS) URL() string { return fmt.Sprintf("gs://%s?endpoint=%s", f.Bucket, f.Endpoint) }

// ServiceAccountKey is a service account's JSON key as Google issues it, with a fresh RSA key;
// tokenURI is where Google's general credentials loader would exchange it for a token.
func ServiceAccountKey(tb testing.TB, tokenURI string) []byte {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "datafleet-test", "private_key_id": "1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "backups@datafleet-test.iam.gserviceaccount.com", "client_id": "1",
		"token_uri": tokenURI,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// StartFakeGCS runs fake-gcs-server for the test and creates the bucket "backups". Every address
// it hands out (upload locations) is its own: nothing is sent to Google.
func StartFakeGCS(tb testing.TB) *FakeGCS {
	tb.Helper()
	port := FreePort(tb)
	hostport := fmt.Sprintf("127.0.0.1:%d", port)
	f := &FakeGCS{Endpoint: "http://" + hostport, Bucket: "backups"}
	cmd := exec.Command(goTool(tb, "FAKE_GCS_BIN", "github.com/fsouza/fake-gcs-server", FakeGCSVersion), "-scheme", "http", "-host", "127.0.0.1", "-port", fmt.Sprint(port),
		"-backend", "memory", "-public-host", hostport, "-external-url", f.Endpoint, "-log-level", "warn")
	startServer(tb, cmd)
	// Bucket creation is not part of gocloud.dev/blob: the test sets the store up like an admin would.
	body, _ := json.Marshal(map[string]string{"name": f.Bucket})
	Eventually(tb, 30*time.Second, func() error {
		resp, err := http.Post(f.Endpoint+"/storage/v1/b?project=datafleet-test", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("creating the bucket: %s", resp.Status)
		}
		return nil
	})
	return f
}
