package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The package's tests also run on S3: TestMain starts a real S3-compatible
// server (versitygw, through shared/s3/start-s3.sh) on loopback, and
// eachStore adds an "s3" store on it. A server that cannot be started fails
// the tests that need it; only KILN_E2E=0 outside CI (CI=true) skips them.
var (
	s3Env     map[string]string // the S3_... variables start-s3.sh printed
	s3Err     error             // why the server is not available
	s3Skip    string            // set when S3 tests are skipped on request
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
	stop, err := startS3(dir)
	if err != nil {
		s3Err = err
		fmt.Fprintf(os.Stderr, "storage: S3 server not available: %v\n", err)
	}
	code := m.Run()
	if stop != nil {
		stop()
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

// sharedDir finds the project's shared/ tools: $KILN_SHARED_DIR, else
// shared/ beside the module root or one of its parents.
func sharedDir() (string, error) {
	if d := os.Getenv("KILN_SHARED_DIR"); d != "" {
		return d, nil
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a module")
	}
	for dir := filepath.Dir(gomod); ; {
		p := filepath.Join(dir, "..", "shared")
		if _, err := os.Stat(filepath.Join(p, "s3", "start-s3.sh")); err == nil {
			return filepath.Clean(p), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("shared/s3/start-s3.sh not found beside %s or its parents; set KILN_SHARED_DIR", filepath.Dir(gomod))
		}
		dir = parent
	}
}

var exportLine = regexp.MustCompile(`^export ([A-Z0-9_]+)=(.*)$`)

// startS3 starts the server with its state in dir and returns how to stop it.
func startS3(dir string) (func(), error) {
	shared, err := sharedDir()
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	data := filepath.Join(dir, "s3")
	// The first run installs versitygw from the Go module proxy (minutes).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(shared, "s3", "start-s3.sh"), addr, data, "kiln-test")
	cmd.Env = append(os.Environ(), "S3_QUIET=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	stop := func() {
		exec.Command("bash", filepath.Join(shared, "s3", "stop-s3.sh"), data).Run()
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("start-s3.sh: %v\n%s", err, stderr.String())
	}
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if m := exportLine.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			env[m[1]] = m[2]
		}
	}
	if env["S3_ENDPOINT"] == "" || env["S3_BUCKET"] == "" {
		stop()
		return nil, fmt.Errorf("start-s3.sh printed no S3_ENDPOINT/S3_BUCKET:\n%s", out)
	}
	s3Env = env
	fmt.Fprintf(os.Stderr, "storage: S3 server at %s (bucket %s) up in %s\n", env["S3_ENDPOINT"], env["S3_BUCKET"], time.Since(start).Round(time.Millisecond))
	return stop, nil
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
		Endpoint:      s3Env["S3_ENDPOINT"],
		Region:        s3Env["S3_REGION"],
		Bucket:        s3Env["S3_BUCKET"],
		AccessKey:     s3Env["S3_ACCESS_KEY"],
		SecretKey:     s3Env["S3_SECRET_KEY"],
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
