package storage

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiln/internal/testbed"
)

// The package's tests also run on S3: TestMain starts a real S3-compatible
// server (versitygw, through internal/testbed) on loopback, and
// eachStore adds an "s3" store on it. A server that cannot be started fails
// the tests that need it; only KILN_E2E=0 outside CI (CI=true) skips them.
var (
	s3Server  *testbed.S3 // the running server
	s3Err     error       // why the server is not available
	s3Skip    string      // set when S3 tests are skipped on request
	s3RootSeq atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if !isCI() && os.Getenv("KILN_E2E") == "0" {
		s3Skip = "KILN_E2E=0: S3 tests skipped on request (ignored when CI=true)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kiln-storage-s3-")
	if err != nil {
		s3Err = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	s3Server, s3Err = startS3(dir)
	if s3Err != nil {
		fmt.Fprintf(os.Stderr, "storage: S3 server not available: %v\n", s3Err)
		return m.Run()
	}
	code := m.Run()
	if err := s3Server.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "storage: %v\n", err) // stopped all the same
	}
	return code
}

func isCI() bool {
	switch strings.ToLower(os.Getenv("CI")) {
	case "true", "1", "yes":
		return true
	}
	return false
}

// startS3 starts the server with its state in dir.
func startS3(dir string) (*testbed.S3, error) {
	// The first run builds versitygw from the Go module proxy (minutes).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	s, err := testbed.StartS3(ctx, dir, "kiln-test")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "storage: S3 server at %s (bucket %s) up in %s\n", s.Endpoint, s.Bucket, time.Since(start).Round(time.Millisecond))
	return s, nil
}

// s3Serial is held by the test using S3: the AWS SDK's session setup
// rewrites http.DefaultClient's transport when AWS_CA_BUNDLE is set (a
// data race with every request on it), so S3 stores are made and used by
// one test at a time while the rest of the package runs in parallel.
var s3Serial sync.Mutex

// serialS3 holds s3Serial until t ends. Call it once, before the test's
// first S3 store.
func serialS3(t *testing.T) {
	t.Helper()
	s3Serial.Lock()
	t.Cleanup(s3Serial.Unlock)
}

// s3Params returns parameters for a fresh key prefix of the test bucket, so
// that tests never see each other's data; part size is S3's minimum, 5 MiB.
// It fails the test when the server is not up, and skips it on request.
func s3Params(t *testing.T) S3Params {
	t.Helper()
	if s3Skip != "" {
		t.Skip(s3Skip)
	}
	if s3Err != nil {
		t.Fatalf("S3 server not available: %v", s3Err)
	}
	name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(t.Name(), "-")
	return S3Params{
		Endpoint:      s3Server.Endpoint,
		Region:        s3Server.Region,
		Bucket:        s3Server.Bucket,
		AccessKey:     s3Server.AccessKey,
		SecretKey:     s3Server.SecretKey,
		PathStyle:     true,
		Insecure:      true,
		RootDirectory: fmt.Sprintf("/t/%s-%d-%d", name, time.Now().UnixNano(), s3RootSeq.Add(1)),
		ChunkSize:     5 << 20,
	}
}

// newS3Store returns a store on a fresh prefix of the test bucket.
func newS3Store(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := NewS3(s3Params(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
