// Package store opens a BackupStore's bucket through gocloud.dev/blob. It is the only place that
// knows a provider: engines and controllers see a *Store, whose objects they read and write with
// the blob API, so any store gocloud.dev supports is a backup target.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob:// with the pod's identity or AZURE_* environment
	_ "gocloud.dev/blob/fileblob"  // file://
	"gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob" // mem:// (tests)
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcp"
	"golang.org/x/oauth2/google"

	"github.com/datafleet-dev/datafleet/framework/bounded"
)

// Keys of a BackupStore's credentials Secret.
const (
	// S3: a static access key. Without them the AWS SDK's default chain applies (IRSA, instance
	// profile, environment).
	KeyAWSAccessKeyID     = "AWS_ACCESS_KEY_ID"
	KeyAWSSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	KeyAWSSessionToken    = "AWS_SESSION_TOKEN"
	// GCS: a service account's JSON key. Without it, Google's application default credentials.
	KeyGoogleCredentials = "GOOGLE_APPLICATION_CREDENTIALS_JSON"
)

// CredentialKeys are every key of a credentials Secret a store reads; whatever else the Secret
// holds is the tenant's and reaches no process (the backup Job takes these, not the Secret).
var CredentialKeys = []string{KeyAWSAccessKeyID, KeyAWSSecretAccessKey, KeyAWSSessionToken, KeyGoogleCredentials}

// Store is an opened BackupStore: a bucket and the prefix every key lives under.
type Store struct {
	Bucket *blob.Bucket
	prefix string
	// bucketName is the provider's name of the bucket (the URL's host), for calls gocloud.dev
	// does not make (AbortUploads).
	bucketName string
}

// Close releases the bucket's connections.
func (s *Store) Close() error { return s.Bucket.Close() }

// Key joins parts under the store's prefix.
func (s *Store) Key(parts ...string) string {
	return strings.TrimPrefix(path.Join(append([]string{s.prefix}, parts...)...), "/")
}

// Open opens the bucket at rawURL with the credentials Secret's data (nil for none).
func Open(ctx context.Context, rawURL, prefix string, creds map[string][]byte) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store url: %w", err)
	}
	var b *blob.Bucket
	switch u.Scheme {
	case s3blob.Scheme:
		b, err = openS3(ctx, u, creds)
	case gcsblob.Scheme:
		b, err = openGCS(ctx, u, creds)
	case "azblob":
		if len(creds) > 0 {
			return nil, errors.New("azblob:// uses the operator pod's Azure identity; a credentials Secret is not supported")
		}
		b, err = blob.OpenBucket(ctx, rawURL)
	default:
		if len(creds) > 0 {
			return nil, fmt.Errorf("%s:// stores take no credentials Secret", u.Scheme)
		}
		b, err = blob.OpenBucket(ctx, rawURL)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", Redact(rawURL), err)
	}
	return &Store{Bucket: b, prefix: strings.Trim(prefix, "/"), bucketName: u.Host}, nil
}

// openS3 is s3blob's URL opener with the Secret's static key in place of the ambient
// credentials: the operator serves many stores with different keys, so the process environment
// cannot hold them.
func openS3(ctx context.Context, u *url.URL, creds map[string][]byte) (*blob.Bucket, error) {
	q := u.Query()
	var opts []func(*s3.Options)
	for _, key := range []string{"use_path_style", "s3ForcePathStyle", "disable_https"} {
		v := q.Get(key)
		if v == "" {
			continue
		}
		q.Del(key)
		on, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("invalid value for %q: %w", key, err)
		}
		if key == "disable_https" {
			opts = append(opts, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = on })
		} else {
			opts = append(opts, func(o *s3.Options) { o.UsePathStyle = on })
		}
	}
	cfg, err := gcaws.V2ConfigFromURLParams(ctx, q)
	if err != nil {
		return nil, err
	}
	id, secret := string(creds[KeyAWSAccessKeyID]), string(creds[KeyAWSSecretAccessKey])
	switch {
	case id != "" && secret != "":
		cfg.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, string(creds[KeyAWSSessionToken])))
	case len(creds) > 0:
		return nil, fmt.Errorf("the credentials Secret needs both %s and %s", KeyAWSAccessKeyID, KeyAWSSecretAccessKey)
	}
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, opts...), u.Host,
		&s3blob.Options{RequestChecksumCalculation: cfg.RequestChecksumCalculation})
}

func openGCS(ctx context.Context, u *url.URL, creds map[string][]byte) (*blob.Bucket, error) {
	key, ok := creds[KeyGoogleCredentials]
	if !ok {
		if len(creds) > 0 {
			return nil, fmt.Errorf("the credentials Secret needs %s", KeyGoogleCredentials)
		}
		return blob.OpenBucket(ctx, u.String())
	}
	c, err := google.CredentialsFromJSON(ctx, key, "https://www.googleapis.com/auth/devstorage.read_write")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyGoogleCredentials, err)
	}
	hc, err := gcp.NewHTTPClient(gcp.DefaultTransport(), gcp.CredentialsTokenSource(c))
	if err != nil {
		return nil, err
	}
	return gcsblob.OpenBucket(ctx, hc, u.Host, nil)
}

// ProbeKey is the object Probe writes under the prefix.
const ProbeKey = ".datafleet-probe"

// Probe writes, reads back and deletes an object under the prefix: what every backup needs.
func (s *Store) Probe(ctx context.Context) error {
	var n [8]byte
	_, _ = rand.Read(n[:])
	// One key, so that an error names the same object every time; the content proves the read.
	key := s.Key(ProbeKey)
	want := []byte("datafleet probe " + hex.EncodeToString(n[:]))
	if err := s.Bucket.WriteAll(ctx, key, want, nil); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := s.ReadLimited(ctx, key, int64(len(want)))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if string(got) != string(want) {
		return errors.New("read: the probe object came back different from what was written")
	}
	if err := s.Bucket.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// ErrTooLarge is what ReadLimited reports for an object larger than its limit.
var ErrTooLarge = bounded.ErrTooLarge

// ReadLimited reads the object at key, of at most max bytes: one that says it is larger, or
// turns out to be (a store that streams without end), is refused after max+1 bytes, so what a
// store sends cannot fill the reader's memory.
func (s *Store) ReadLimited(ctx context.Context, key string, max int64) ([]byte, error) {
	r, err := s.Bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if n := r.Size(); n > max {
		return nil, fmt.Errorf("%w: %s has %d bytes, at most %d are read", ErrTooLarge, key, n, max)
	}
	b, err := bounded.ReadAll(r, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return b, nil
}

// Redact drops a URL's user info, which could hold a secret, for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable url)"
	}
	u.User = nil
	return u.String()
}
