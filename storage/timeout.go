package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// DefaultBackendTimeout bounds one metadata request to a remote backend
// when S3Params leaves Timeout at zero.
const DefaultBackendTimeout = 30 * time.Second

// timeoutDriver bounds each metadata call to a remote backend (stat, small
// reads and writes, listings, deletes), so a backend that stops answering
// turns into an error the client sees within the bound instead of a request
// that hangs; the S3 driver's HTTP client has no timeout of its own.
// Streams (Reader, Writer) and Move are left unbounded: their time grows
// with the blob (a server-side copy of a large blob is one Move), and the
// client's side of a stream is bounded by the HTTP stall timeout.
type timeoutDriver struct {
	storagedriver.StorageDriver
	timeout time.Duration
}

func withTimeout(d storagedriver.StorageDriver, timeout time.Duration) storagedriver.StorageDriver {
	if timeout <= 0 {
		timeout = DefaultBackendTimeout
	}
	return timeoutDriver{StorageDriver: d, timeout: timeout}
}

// bounded runs op under the timeout. An error after the deadline passed is
// reported as a timeout whatever the driver made of the cancellation (the
// AWS SDK hides the context error inside its own).
func (d timeoutDriver) bounded(ctx context.Context, name, p string, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	err := op(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("storage backend: %s %s: no answer within %v: %w (%w)", name, p, d.timeout, os.ErrDeadlineExceeded, err)
	}
	return err
}

func (d timeoutDriver) GetContent(ctx context.Context, p string) (b []byte, err error) {
	err = d.bounded(ctx, "get", p, func(ctx context.Context) error {
		b, err = d.StorageDriver.GetContent(ctx, p)
		return err
	})
	return b, err
}

func (d timeoutDriver) PutContent(ctx context.Context, p string, content []byte) error {
	return d.bounded(ctx, "put", p, func(ctx context.Context) error {
		return d.StorageDriver.PutContent(ctx, p, content)
	})
}

func (d timeoutDriver) Stat(ctx context.Context, p string) (fi storagedriver.FileInfo, err error) {
	err = d.bounded(ctx, "stat", p, func(ctx context.Context) error {
		fi, err = d.StorageDriver.Stat(ctx, p)
		return err
	})
	return fi, err
}

func (d timeoutDriver) List(ctx context.Context, p string) (entries []string, err error) {
	err = d.bounded(ctx, "list", p, func(ctx context.Context) error {
		entries, err = d.StorageDriver.List(ctx, p)
		return err
	})
	return entries, err
}

func (d timeoutDriver) Delete(ctx context.Context, p string) error {
	return d.bounded(ctx, "delete", p, func(ctx context.Context) error {
		return d.StorageDriver.Delete(ctx, p)
	})
}
