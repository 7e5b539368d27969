// Package store opens a BackupStore's bucket through gocloud.dev/blob. It is the only place that
// knows a provider: engines and controllers see a *Store, whose objects they read and write with
// the blob API, so any store gocloud.dev supports is a backup target.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/fileblob" // file://
	"gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob" // mem:// (tests)
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcp"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/option"

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
	// Azure: a storage account's name with its shared key or a SAS token. Without them, the
	// operator's own identity (workload identity, a managed identity, AZURE_* environment).
	KeyAzureAccount  = "AZURE_STORAGE_ACCOUNT"
	KeyAzureKey      = "AZURE_STORAGE_KEY"
	KeyAzureSASToken = "AZURE_STORAGE_SAS_TOKEN"
)

// CredentialKeys are every key of a credentials Secret a store reads; whatever else the Secret
// holds is the tenant's and reaches no process (the backup Job takes these, not the Secret).
var CredentialKeys = []string{KeyAWSAccessKeyID, KeyAWSSecretAccessKey, KeyAWSSessionToken, KeyGoogleCredentials,
	KeyAzureAccount, KeyAzureKey, KeyAzureSASToken}

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

// Open opens the bucket at rawURL with the credentials Secret's data: nil when the store names no
// Secret (the provider's ambient credentials, which the policy allows or not), never nil when it
// names one, even an empty one: a named Secret without the keys the provider needs is an error,
// not a way to borrow the ambient identity the policy withheld.
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
	case azureblob.Scheme:
		b, err = openAzure(ctx, u, creds)
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
	case creds != nil:
		return nil, fmt.Errorf("the credentials Secret needs both %s and %s", KeyAWSAccessKeyID, KeyAWSSecretAccessKey)
	}
	return s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, opts...), u.Host,
		&s3blob.Options{RequestChecksumCalculation: cfg.RequestChecksumCalculation})
}

// storageScope is what a Cloud Storage token may do: read and write objects.
const storageScope = "https://www.googleapis.com/auth/devstorage.read_write"

// openGCS opens a gs:// bucket with the Secret's service account key, or Google's application
// default credentials without one. The key file is the tenant's: Google's general loader
// (CredentialsFromJSON) does what the file says, and an "external_account" file makes it read a
// file or URL of the operator's pod (its own ServiceAccount token) and send it to a token_url of
// the tenant's choosing, while a service account file's token_uri receives the operator's POST.
// So the file is read as a service account key and nothing else, and the key signs its own
// tokens (a self-signed JWT, which Cloud Storage accepts): no token endpoint is ever called.
// An endpoint parameter (an emulator, or a private endpoint; the policy allows it or not) sends
// the storage requests there.
func openGCS(ctx context.Context, u *url.URL, creds map[string][]byte) (*blob.Bucket, error) {
	endpoint := u.Query().Get("endpoint")
	key, ok := creds[KeyGoogleCredentials]
	if !ok {
		if creds != nil {
			return nil, fmt.Errorf("the credentials Secret needs %s", KeyGoogleCredentials)
		}
		if endpoint != "" {
			return nil, errors.New("a gs:// store with an endpoint needs a credentials Secret")
		}
		return blob.OpenBucket(ctx, u.String())
	}
	ts, err := google.JWTAccessTokenSourceWithScope(key, storageScope)
	if err != nil {
		return nil, fmt.Errorf("%s is not a service account key: %w", KeyGoogleCredentials, err)
	}
	hc, err := gcp.NewHTTPClient(gcp.DefaultTransport(), ts)
	if err != nil {
		return nil, err
	}
	opts := &gcsblob.Options{}
	if endpoint != "" {
		opts.ClientOptions = []option.ClientOption{option.WithEndpoint(strings.TrimSuffix(endpoint, "/") + "/storage/v1/")}
	}
	return gcsblob.OpenBucket(ctx, hc, u.Host, opts)
}

// openAzure opens an azblob:// container with the Secret's storage account and its shared key or
// SAS token, or with the operator's own identity without a Secret. The URL may name a domain (an
// emulator's host:port, or a private endpoint: the policy allows it or not), protocol=http (only
// with a domain: a SAS token is a bearer credential) and localemu=true (the account in the
// path, as Azurite serves it); the account is the Secret's, never the URL's.
func openAzure(ctx context.Context, u *url.URL, creds map[string][]byte) (*blob.Bucket, error) {
	account := string(creds[KeyAzureAccount])
	key, sas := string(creds[KeyAzureKey]), string(creds[KeyAzureSASToken])
	if account == "" && key == "" && sas == "" {
		if creds != nil {
			return nil, fmt.Errorf("the credentials Secret needs %s with %s or %s", KeyAzureAccount, KeyAzureKey, KeyAzureSASToken)
		}
		return blob.OpenBucket(ctx, u.String())
	}
	if account == "" || (key == "") == (sas == "") {
		return nil, fmt.Errorf("the credentials Secret needs %s with exactly one of %s and %s", KeyAzureAccount, KeyAzureKey, KeyAzureSASToken)
	}
	opts := &azureblob.ServiceURLOptions{AccountName: account}
	for param, values := range u.Query() {
		// One value each: the policy checked the first domain, and a second must not be the one
		// used (gocloud's own opener refuses them too).
		if len(values) > 1 {
			return nil, fmt.Errorf("the store url names %q more than once", param)
		}
		v := values[0]
		switch param {
		case "domain":
			opts.StorageDomain = v
		case "protocol":
			opts.Protocol = v
		case "localemu":
			on, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("invalid value for %q: %w", param, err)
			}
			opts.IsLocalEmulator = on
		default:
			return nil, fmt.Errorf("azblob:// stores with a credentials Secret take domain, protocol and localemu, not %q", param)
		}
	}
	if opts.Protocol == "http" && opts.StorageDomain == "" {
		return nil, errors.New("protocol=http is for an emulator or a private endpoint named by domain, not for Azure's own")
	}
	svc, err := azureblob.NewServiceURL(opts)
	if err != nil {
		return nil, err
	}
	containerURL, err := url.JoinPath(string(svc), u.Host)
	if err != nil {
		return nil, err
	}
	var c *container.Client
	if key != "" {
		cred, err := azblob.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyAzureKey, err)
		}
		c, err = container.NewClientWithSharedKeyCredential(containerURL, cred, nil)
		if err != nil {
			return nil, err
		}
	} else if c, err = container.NewClientWithNoCredential(containerURL+"?"+strings.TrimPrefix(sas, "?"), nil); err != nil {
		return nil, err
	}
	return azureblob.OpenBucket(ctx, c, nil)
}

// ProbeKey is the object Probe writes under the prefix for the prober id: each BackupStore
// probes its own, since several (two namespaces', two clusters') may share a bucket and prefix,
// and one must not delete another's probe between its write and its read.
func ProbeKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return ".datafleet-probe-" + hex.EncodeToString(sum[:6])
}

// Probe writes, reads back and deletes an object under the prefix: what every backup needs. id
// names the prober (ProbeKey).
func (s *Store) Probe(ctx context.Context, id string) error {
	var n [8]byte
	_, _ = rand.Read(n[:])
	// One key per prober, so that an error names the same object every time; the content
	// proves the read.
	key := s.Key(ProbeKey(id))
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
