package storage

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// hangingDriver never answers a metadata request until its context ends,
// like an S3 endpoint that accepted the connection and went silent.
type hangingDriver struct{ storagedriver.StorageDriver }

func (hangingDriver) GetContent(ctx context.Context, _ string) ([]byte, error) {
	<-ctx.Done()
	return nil, errors.New("RequestCanceled: request context canceled") // what the AWS SDK says
}

func (hangingDriver) Stat(ctx context.Context, _ string) (storagedriver.FileInfo, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestBackendTimeout(t *testing.T) {
	t.Parallel()
	d := withTimeout(hangingDriver{inmemory.New()}, 50*time.Millisecond)
	ctx := t.Context()

	done := make(chan error, 2)
	go func() { _, err := d.GetContent(ctx, "/repositories/x/_tags/v1"); done <- err }()
	go func() { _, err := d.Stat(ctx, "/blobs/sha256/ab/abcd"); done <- err }()
	for range 2 {
		select {
		case err := <-done:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("error %v is not reported as a timeout", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a hanging backend call did not return")
		}
	}

	// Calls that answer are untouched.
	if err := d.PutContent(ctx, "/a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if entries, err := d.List(ctx, "/"); err != nil || len(entries) != 1 {
		t.Fatalf("List = %v, %v", entries, err)
	}
	if err := d.Delete(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
}
