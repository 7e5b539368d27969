package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIOVersion is the MinIO module version tests run (hack/go-tool.sh builds and caches it; the
// proxy serves only pseudo-versions of it).
const MinIOVersion = "v0.0.0-20260212201848-7aac2a2c5b7c"

// MinIO is a real MinIO server on loopback with one empty bucket.
type MinIO struct {
	Endpoint             string // http://127.0.0.1:port
	AccessKey, SecretKey string
	Bucket               string
}

// URL is the gocloud.dev/blob URL of the bucket.
func (m *MinIO) URL() string {
	return fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=us-east-1", m.Bucket, m.Endpoint)
}

// Credentials is a BackupStore credentials Secret's data for the server.
func (m *MinIO) Credentials() map[string][]byte {
	return map[string][]byte{"AWS_ACCESS_KEY_ID": []byte(m.AccessKey), "AWS_SECRET_ACCESS_KEY": []byte(m.SecretKey)}
}

// CredentialsDir writes Credentials as a mounted Secret shows them, a file per key, into
// dir/credentials (readable by other users: an engine's archive command runs as the engine's)
// and returns that directory, for a backup.SegmentConfig's CredentialsDir.
func (m *MinIO) CredentialsDir(tb testing.TB, dir string) string {
	tb.Helper()
	creds := filepath.Join(dir, "credentials")
	if err := os.MkdirAll(creds, 0o755); err != nil {
		tb.Fatal(err)
	}
	for k, v := range m.Credentials() {
		if err := os.WriteFile(filepath.Join(creds, k), v, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return creds
}

// StartMinIO runs a MinIO server for the test and creates the bucket "backups".
func StartMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	dir := tb.TempDir()
	port, console := FreePort(tb), FreePort(tb)
	m := &MinIO{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), AccessKey: "datafleet-test", SecretKey: "datafleet-test-secret", Bucket: "backups"}
	cmd := exec.Command(goTool(tb, "MINIO_BIN", "github.com/minio/minio", MinIOVersion), "server", "--quiet", "--address", fmt.Sprintf("127.0.0.1:%d", port),
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), dir)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	startServer(tb, cmd)
	Eventually(tb, 30*time.Second, func() error {
		resp, err := http.Get(m.Endpoint + "/minio/health/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("minio: %s", resp.Status)
		}
		return nil
	})
	// Bucket creation is not part of gocloud.dev/blob: the test sets the store up like an admin would.
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, "")})
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(m.Bucket)}); err != nil {
		tb.Fatal(err)
	}
	return m
}

// cacheDir is where hack/ builds tools: $DATAFLEET_CACHE or ~/.cache/datafleet.
func cacheDir() string {
	if c := os.Getenv("DATAFLEET_CACHE"); c != "" {
		return c
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "datafleet")
}
