package storage

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// driverFiles keeps the files through a distribution storage driver.
type driverFiles struct{ driver storagedriver.StorageDriver }

func (b driverFiles) stat(ctx context.Context, p string) (int64, time.Time, error) {
	fi, err := b.driver.Stat(ctx, p)
	if err != nil {
		return 0, time.Time{}, err
	}
	return fi.Size(), fi.ModTime(), nil
}

func (b driverFiles) open(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	return b.driver.Reader(ctx, p, offset)
}

func (b driverFiles) read(ctx context.Context, p string) ([]byte, error) {
	return b.driver.GetContent(ctx, p)
}

func (b driverFiles) names(ctx context.Context, p string) ([]string, error) {
	entries, err := b.driver.List(ctx, p)
	for i, e := range entries {
		entries[i] = path.Base(e)
	}
	return entries, err
}

func (b driverFiles) readAll(ctx context.Context, p string) ([]byte, error) {
	return b.driver.GetContent(ctx, p)
}

func (b driverFiles) touch(ctx context.Context, p string, content func() ([]byte, error)) error {
	if _, err := b.driver.Stat(ctx, p); err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	c, err := content()
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return err
	}
	return b.driver.PutContent(ctx, p, c)
}

func (b driverFiles) remove(ctx context.Context, p string) error { return b.driver.Delete(ctx, p) }

func (b driverFiles) removeAll(ctx context.Context, p string) error { return b.driver.Delete(ctx, p) }

func (b driverFiles) move(ctx context.Context, from, to string) error {
	return b.driver.Move(ctx, from, to)
}

func (b driverFiles) url(r *http.Request, p string) (string, error) {
	return b.driver.RedirectURL(r, p)
}

func (b driverFiles) moveOut(ctx context.Context, from, to string) error {
	return b.driver.Move(ctx, from, to)
}

func (b driverFiles) write(ctx context.Context, p string, content []byte) error {
	return b.driver.PutContent(ctx, p, content)
}

// writeInOrder writes one file at a time: each durable before the next.
func (b driverFiles) writeInOrder(ctx context.Context, groups ...[]smallFile) error {
	for _, g := range groups {
		for _, f := range g {
			if err := b.driver.PutContent(ctx, f.path, f.content); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendAt appends through the storage driver's resumable writer. Drivers
// cannot cut a file back, so the chunk is first spooled to a local
// temporary file: a body that breaks off never reaches the store.
func (b driverFiles) appendAt(ctx context.Context, p string, size int64, h hash.Hash, r io.Reader, final bool) (int64, error) {
	spool, err := os.CreateTemp("", "kiln-chunk-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	hashed, err := restoreHashFrom(h)
	if err != nil {
		return 0, err
	}
	n, err := copyHashing(spool, hashed, r)
	if err != nil {
		return 0, err
	}
	if n == 0 && !final {
		// Nothing to store. On S3 a writer opened at size 0 would start a
		// second, empty multipart upload that a later append may resume
		// instead of the real one.
		return 0, nil
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	w, err := b.driver.Writer(ctx, p, size > 0)
	if err != nil {
		return 0, err
	}
	if w.Size() != size {
		w.Close()
		return 0, fmt.Errorf("upload data %s: stored %d bytes, state says %d", p, w.Size(), size)
	}
	if _, err := io.Copy(w, spool); err != nil {
		w.Close()
		return 0, err
	}
	if final {
		err = w.Commit(ctx)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	copyHashState(h, hashed)
	return n, nil
}

// syncsChunks: a driver's writes are as durable as it makes them, and a
// driver cannot tell whether a file is shorter than the state (shortOf).
func (b driverFiles) syncsChunks() bool { return true }

func (b driverFiles) replace(ctx context.Context, p string, content []byte) error {
	if b.driver.Name() != "inmemory" {
		return b.write(ctx, p, content)
	}
	// The in-memory driver rewrites a file in place, under the readers of
	// its last content (a build log followed while its next copy lands);
	// a new file moved over it leaves them the old one.
	tmp := p + ".replacing-" + rand.Text()
	if err := b.driver.PutContent(ctx, tmp, content); err != nil {
		return err
	}
	return b.driver.Move(ctx, tmp, p)
}

// sync has nothing to write: replace wrote durably. It reports a missing
// file as the filesystem's does.
func (b driverFiles) sync(ctx context.Context, p string) error {
	_, _, err := b.stat(ctx, p)
	return err
}

// shortOf cannot tell: an unfinished write may be invisible until it is
// committed.
func (b driverFiles) shortOf(context.Context, string, int64) bool { return false }

// abortWrite finds an unfinished write by resuming it in append mode; when
// there is none the driver answers "not found" or, for an empty object,
// starts a fresh write that Cancel throws away again.
func (b driverFiles) abortWrite(ctx context.Context, p string) bool {
	w, err := b.driver.Writer(ctx, p, true)
	if err != nil {
		return false
	}
	w.Cancel(ctx)
	w.Close()
	return true
}

// clock: files on S3 carry the server's clock, in whole seconds, so it is
// read from a probe object; the in-memory driver's is this process's.
func (b driverFiles) clock(ctx context.Context) (time.Time, time.Duration, error) {
	if b.driver.Name() == "inmemory" {
		return time.Now(), 0, nil
	}
	p := trashClockPath()
	if err := b.driver.PutContent(ctx, p, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return time.Time{}, 0, err
	}
	fi, err := b.driver.Stat(ctx, p)
	if err != nil {
		return time.Time{}, 0, err
	}
	b.driver.Delete(ctx, p)
	return fi.ModTime(), time.Second, nil
}
