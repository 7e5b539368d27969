package store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// AbortUploads aborts the unfinished multipart uploads of the objects at keys (full keys, as Key
// gives them): a Job killed in the middle of a backup (its deadline, the node gone) cannot abort
// its own, and the provider keeps, and bills, their parts until someone does. It returns how many
// it aborted. Uploads are listed by each exact key, which every S3 API answers (MinIO lists by
// exact key only). Only S3 keeps such parts for ever; GCS resumable uploads and Azure uncommitted
// blocks expire by themselves within a week.
func (s *Store) AbortUploads(ctx context.Context, keys ...string) (int, error) {
	var c *s3.Client
	if !s.Bucket.As(&c) {
		return 0, nil
	}
	aborted := 0
	for _, key := range keys {
		out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.bucketName), Prefix: aws.String(key)})
		if err != nil {
			return aborted, fmt.Errorf("listing the unfinished uploads of %s: %w", key, err)
		}
		for _, u := range out.Uploads {
			if aws.ToString(u.Key) != key {
				continue
			}
			if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.bucketName), Key: u.Key, UploadId: u.UploadId}); err != nil {
				return aborted, fmt.Errorf("aborting the upload of %s: %w", aws.ToString(u.Key), err)
			}
			aborted++
		}
	}
	return aborted, nil
}
