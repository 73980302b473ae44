package testbed

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// S3 is a running S3-compatible server (versitygw on its posix backend)
// with one bucket, on loopback.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	Bucket    string
	AccessKey string
	SecretKey string
	LogFile   string // the server's output

	server *daemon
}

const (
	s3Region    = "us-east-1"
	s3AccessKey = "kilntestaccess"
	s3SecretKey = "kilntestsecret123"
	// s3ReadyTimeout bounds the wait for the server's first answer.
	s3ReadyTimeout = time.Minute
	// s3StopGrace covers versitygw's graceful shutdown (about 2 s).
	s3StopGrace = 10 * time.Second
)

// StartS3 starts versitygw on a free loopback port with its data under
// stateDir and creates bucket. The first call on a machine builds versitygw
// (minutes; see installVersitygw). ctx bounds the start only; the server
// runs until Stop, which the caller must call.
func StartS3(ctx context.Context, stateDir, bucket string) (*S3, error) {
	bin, err := installVersitygw(ctx)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(stateDir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	s := &S3{Region: s3Region, Bucket: bucket, AccessKey: s3AccessKey, SecretKey: s3SecretKey,
		LogFile: filepath.Join(stateDir, "versitygw.log")}
	var posixFlags []string
	for attempt := 1; ; attempt++ {
		err := s.start(ctx, bin, root, posixFlags...)
		switch {
		case err == nil:
			if err := createBucket(ctx, s); err != nil {
				s.Stop()
				return nil, err
			}
			return s, nil
		case posixFlags == nil && logMentions(s.LogFile, "xattr check failed"):
			// The posix backend keeps metadata in user xattrs; where the
			// filesystem has none (tmpfs, overlayfs), it keeps them in a
			// sidecar directory.
			meta := filepath.Join(stateDir, "meta")
			if err := os.MkdirAll(meta, 0o755); err != nil {
				return nil, err
			}
			posixFlags = []string{"--sidecar", meta}
		case attempt < 3 && logMentions(s.LogFile, "address already in use"):
			// Another process took the free port first: pick another.
		default:
			return nil, err
		}
	}
}

// start starts the server on a free port and waits until it answers.
func (s *S3) start(ctx context.Context, bin, root string, posixFlags ...string) error {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	args := append([]string{"--port", addr, "--region", s.Region, "--quiet", "posix"}, posixFlags...)
	args = append(args, root)
	// versitygw reads VGW_* settings too: only the ones here count.
	env := environ(func(name string) bool { return strings.HasPrefix(name, "VGW_") })
	env = append(env, "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	server, err := startDaemon("versitygw", s.LogFile, env, bin, args...)
	if err != nil {
		return err
	}
	s.Endpoint = "http://" + addr
	if err := server.waitReady(ctx, s3ReadyTimeout, s.answers); err != nil {
		server.stop(s3StopGrace)
		return err
	}
	s.server = server
	return nil
}

// answers succeeds once the server answers HTTP at all: an unsigned
// request gets an error status from a server that is serving.
func (s *S3) answers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Stop stops the server: SIGTERM, then SIGKILL if it lingers. Calling it
// again does nothing.
func (s *S3) Stop() error {
	if s.server == nil {
		return nil
	}
	server := s.server
	s.server = nil
	if err := server.stop(s3StopGrace); err != nil {
		return fmt.Errorf("S3 server: %w", err)
	}
	return nil
}

// logMentions reports whether the log file at path contains text.
func logMentions(path, text string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), text)
}
