package storage

import (
	"context"
	"hash"
	"io"
	"net/http"
	"time"
)

// backend holds the store's files: the filesystem store's directly
// (fsFiles, backend_fs*.go), any other through its storage driver
// (driverFiles, backend_driver.go). Only these files know which kind of
// store they serve; the rest of the package asks the backend. Missing
// files are errors isNotFound recognises.
type backend interface {
	// stat returns the size and modification time of the file at p.
	stat(ctx context.Context, p string) (int64, time.Time, error)
	// open opens the file at p for reading from offset.
	open(ctx context.Context, p string, offset int64) (io.ReadCloser, error)
	// read returns the content of the small file at p (a tag, a link);
	// the caller must not change the slice.
	read(ctx context.Context, p string) ([]byte, error)
	// names returns the names (not paths) in directory p, in no order.
	names(ctx context.Context, p string) ([]string, error)
	// readAll returns the content of the file at p, uncached (a blob).
	readAll(ctx context.Context, p string) ([]byte, error)
	// touch sets the modification time of the file at p to now, if it
	// exists; a driver does it by rewriting what content returns.
	touch(ctx context.Context, p string, content func() ([]byte, error)) error
	// remove deletes the file at p; a file a concurrent rename took away
	// is not found, never deleted.
	remove(ctx context.Context, p string) error
	// removeAll deletes p and everything under it, durably.
	removeAll(ctx context.Context, p string) error
	// move renames from to to, creating to's directory, durably.
	move(ctx context.Context, from, to string) error
	// moveOut is move for a file taken out of the way (fsck's
	// quarantine): its removal from from is durable too.
	moveOut(ctx context.Context, from, to string) error
	// url returns a URL the client of r may fetch p from directly, or "".
	url(r *http.Request, p string) (string, error)

	// write stores content as the small file at p, durably and
	// atomically: a crash leaves the old content or the new.
	write(ctx context.Context, p string, content []byte) error
	// writeInOrder writes groups of small files so that, after a crash, a
	// file is only ever visible if every group before its own is; when it
	// returns nil every file is durable.
	writeInOrder(ctx context.Context, groups ...[]smallFile) error
	// appendAt writes r to the upload data at p from offset size, hashing
	// what it writes into h; final marks the last write, after which the
	// data is committed. The data is durable when it returns after a final
	// write, or after any where syncsChunks says so. It returns the bytes
	// written; on an error the data stays as it was and h is to be
	// discarded.
	appendAt(ctx context.Context, p string, size int64, h hash.Hash, r io.Reader, final bool) (int64, error)
	// syncsChunks reports whether appendAt makes every write durable.
	// Where it does not, the session's state is saved with replace and
	// records what a crash can cut it back to (see recoverUpload).
	syncsChunks() bool
	// replace stores content as the small file at p atomically but not
	// durably: after a crash p may hold older content or be cut short.
	replace(ctx context.Context, p string, content []byte) error
	// sync makes the file at p durable as it is now (what replace put
	// there), with its name in its directory and that directory's name in
	// the one above.
	sync(ctx context.Context, p string) error
	// shortOf reports whether the upload data at p is known to hold fewer
	// than size bytes (missing counts). A driver whose unfinished writes
	// are invisible (an S3 multipart upload) cannot tell, and says no.
	shortOf(ctx context.Context, p string, size int64) bool
	// abortWrite cancels an unfinished resumable write at p, if there is
	// one, and reports whether there was.
	abortWrite(ctx context.Context, p string) bool
	// clock returns the time now as the modification times of the files
	// tell it, and their precision.
	clock(ctx context.Context) (time.Time, time.Duration, error)
}

// smallFile is content writeInOrder stores at path.
type smallFile struct {
	path    string
	content []byte
}
