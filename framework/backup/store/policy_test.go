package store_test

import (
	"strings"
	"testing"

	"github.com/datafleet-dev/datafleet/framework/backup/store"
)

func TestPolicyRefusesAmbientCredentialsAndEndpointsItDoesNotAllow(t *testing.T) {
	strict := store.Policy{}
	open := store.Policy{AllowAmbientCredentials: true, Endpoints: []string{"minio.*.svc:9000", "s3.corp.example:443"}}
	for _, c := range []struct {
		policy store.Policy
		url    string
		creds  bool
		want   string // "" admits
	}{
		{strict, "s3://bucket?region=eu-west-1", true, ""},
		{strict, "s3://bucket?region=eu-west-1", false, "use the operator's own cloud identity"},
		{strict, "gs://bucket", false, "allowAmbientCredentials"},
		{strict, "azblob://container", false, "azblob:// stores without a credentials Secret"},
		{strict, "azblob://container", true, ""},
		{strict, "azblob://container?domain=127.0.0.1:10000&protocol=http&localemu=true", true, "domain 127.0.0.1:10000 is not among"},
		{strict, "gs://bucket?endpoint=http://gcs.team.svc:4443", true, "endpoint gcs.team.svc:4443 is not among"},
		{strict, "s3://bucket?endpoint=http://minio.team.svc:9000", true, "endpoint minio.team.svc:9000 is not among the endpoints"},
		{strict, "s3://user:pass@bucket", true, "carries user information"},
		{strict, "file:///var/backups", false, ""},
		{open, "s3://bucket", false, ""},
		{open, "azblob://container", false, ""},
		{open, "s3://bucket?endpoint=http://minio.team.svc:9000", true, ""},
		{open, "s3://bucket?endpoint=HTTP://MINIO.team.svc:9000", true, ""},
		{open, "s3://bucket?endpoint=https://s3.corp.example", true, ""},
		{open, "s3://bucket?endpoint=http://s3.corp.example", true, "endpoint s3.corp.example:80 is not among"},
		{open, "s3://bucket?endpoint=http://minio.team.svc:9001", true, "not among"},
		{open, "s3://bucket?endpoint=http://10.0.0.1:9000", true, "not among"},
		{open, "s3://bucket?endpoint=http://kube-apiserver.kube-system.svc/minio.x.svc:9000", true, "not among"},
		{open, "azblob://container?domain=evil.example", false, "domain evil.example:443 is not among"},
	} {
		err := c.policy.Check(c.url, c.creds)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s (credentials %v): %v, want %q", c.url, c.creds, err, c.want)
		}
	}
}
