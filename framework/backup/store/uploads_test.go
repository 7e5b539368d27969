package store_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/datafleet-dev/datafleet/framework/backup/store"
	"github.com/datafleet-dev/datafleet/test/testenv"
)

// An upload a killed Job left unfinished (its parts billed) is aborted; others' are not touched.
func TestUnfinishedUploadsAreAborted(t *testing.T) {
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	s, err := store.Open(ctx, m.URL(), "team-a", m.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var c *s3.Client
	if !s.Bucket.As(&c) {
		t.Fatal("an s3:// store has no S3 client")
	}
	begin := func(key string) {
		t.Helper()
		up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(m.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		part := make([]byte, 5<<20)
		if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(m.Bucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(1), Body: bytesReader(part)}); err != nil {
			t.Fatal(err)
		}
	}
	begin("team-a/shop/orders/b1-0123abcd/data.gz.enc")
	begin("team-a/shop/orders/b2-4567cdef/data.gz.enc")
	n, err := s.AbortUploads(ctx, s.Key("shop/orders/b1-0123abcd", "data.gz"), s.Key("shop/orders/b1-0123abcd", "data.gz.enc"))
	if err != nil || n != 1 {
		t.Fatalf("aborted %d uploads: %v, want 1", n, err)
	}
	for key, want := range map[string]int{"team-a/shop/orders/b1-0123abcd/data.gz.enc": 0, "team-a/shop/orders/b2-4567cdef/data.gz.enc": 1} {
		// Listed by the exact key: MinIO lists no other way.
		left, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m.Bucket), Prefix: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if len(left.Uploads) != want {
			t.Errorf("%s: %d unfinished uploads left, want %d", key, len(left.Uploads), want)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
