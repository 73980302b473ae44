package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	s3driver "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)

// DefaultS3ChunkSize is the multipart part size used when S3Params leaves
// ChunkSize at zero.
const DefaultS3ChunkSize = 10 << 20

// S3Params configures a Store on S3 (or an S3-compatible server).
type S3Params struct {
	// Endpoint is the server's URL, e.g. http://127.0.0.1:9000; empty
	// means AWS. Without a scheme, https is used unless Insecure is set.
	Endpoint  string
	Region    string
	Bucket    string // must already exist
	AccessKey string // empty: the AWS SDK's usual chain (env, profile, instance role)
	SecretKey string
	// PathStyle puts the bucket in the URL's path rather than its host name
	// (what most self-hosted servers want).
	PathStyle bool
	// Insecure talks plain HTTP to the endpoint.
	Insecure bool
	// RootDirectory is a key prefix inside the bucket; several stores may
	// share a bucket under different prefixes.
	RootDirectory string
	// ChunkSize is the multipart part size in bytes, at least 5 MiB; zero
	// means DefaultS3ChunkSize.
	ChunkSize int64
	// Timeout bounds each metadata request (see timeoutDriver); zero
	// means DefaultBackendTimeout.
	Timeout time.Duration
}

// driverParameters returns p in the parameter map of distribution's s3-aws
// driver (the names of its storage.s3 configuration section).
func (p S3Params) driverParameters() map[string]any {
	endpoint := p.Endpoint
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		if p.Insecure {
			endpoint = "http://" + endpoint
		} else {
			endpoint = "https://" + endpoint
		}
	}
	chunk := p.ChunkSize
	if chunk == 0 {
		chunk = DefaultS3ChunkSize
	}
	return map[string]any{
		"regionendpoint": endpoint,
		"region":         p.Region,
		"bucket":         p.Bucket,
		"accesskey":      p.AccessKey,
		"secretkey":      p.SecretKey,
		"forcepathstyle": p.PathStyle,
		"secure":         !p.Insecure && !strings.HasPrefix(endpoint, "http://"),
		"rootdirectory":  p.RootDirectory,
		"chunksize":      chunk,
		"v4auth":         true,
	}
}

// NewS3 returns a Store on an S3 bucket through distribution's s3-aws
// driver. It checks that the bucket answers before returning, so a wrong
// endpoint, bucket or key fails at start rather than on the first push.
//
// Everything, upload sessions included, lives in the bucket: several kiln
// processes on the same bucket and root serve the same registry, and any of
// them can continue an upload another one started (the driver resumes the
// S3 multipart upload).
func NewS3(p S3Params, opts Options) (*Store, error) {
	if p.Bucket == "" {
		return nil, fmt.Errorf("s3: no bucket")
	}
	if p.Region == "" {
		return nil, fmt.Errorf("s3: no region")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := s3driver.FromParameters(ctx, p.driverParameters())
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	// A listing of the root proves endpoint, credentials and bucket; an
	// empty root is "not found", which is fine.
	if _, err := d.List(ctx, "/"); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("s3: bucket %q at %s: %w", p.Bucket, endpointName(p.Endpoint), err)
	}
	return New(withTimeout(d, p.Timeout), opts), nil
}

func endpointName(e string) string {
	if e == "" {
		return "AWS"
	}
	return e
}
