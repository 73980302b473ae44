package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
)

// Errors the store reports; callers map them to API error codes.
var (
	ErrBlobUnknown      = errors.New("blob unknown")
	ErrManifestUnknown  = errors.New("manifest unknown")
	ErrTagUnknown       = errors.New("tag unknown")
	ErrNameUnknown      = errors.New("repository unknown")
	ErrUploadUnknown    = errors.New("upload unknown")
	ErrDigestMismatch   = errors.New("digest does not match content")
	ErrUnsupportedAlgo  = errors.New("unsupported digest algorithm")
	ErrUploadOutOfOrder = errors.New("upload offset out of order")
	// ErrCorrupt: stored content does not match its digest (kiln fsck
	// finds and quarantines it).
	ErrCorrupt = errors.New("stored content does not match its digest")
)

// Options tune a Store.
type Options struct {
	// UploadExpiry is how long an idle upload session is kept; zero means a day.
	UploadExpiry time.Duration
	// OnTagMoved, when set, is called after a tag was stored pointing to a
	// different manifest (build-on-push listens here). It must not block.
	// It is fixed when the store is built: every write, from the first,
	// reaches the same listener.
	OnTagMoved func(TagMove)
	// ManifestCacheBytes bounds the in-process cache of manifest content
	// by digest (immutable, so correct across instances sharing a store;
	// links and tags are still read on every request). Zero means
	// DefaultManifestCacheBytes (16 MiB); negative disables the cache.
	ManifestCacheBytes int
}

// Store is the content-addressed store. It is safe for concurrent use.
type Store struct {
	driver storagedriver.StorageDriver
	// files holds the store's files: on the filesystem store directly
	// (blobs served as *os.File, for sendfile), elsewhere through driver.
	files        backend
	uploadExpiry time.Duration
	uploadLocks  sync.Map // upload id -> *sync.Mutex
	// boot names this boot of the system (see recoverUpload).
	boot       string
	onTagMoved func(TagMove)
	manifests  *manifestCache

	// gcRunning keeps one collection per store at a time in this process;
	// it does not lock the store: requests go on.
	gcRunning sync.Mutex
	// gcGrace is the grace period (a time.Duration) collections of this
	// store use, here or in another instance; -1 until known.
	gcGrace atomic.Int64
	// sweptHook, when set, runs in a collection between the sweep and the
	// re-check: tests put a racing push there. A field, not a global, so
	// tests of different stores run in parallel.
	sweptHook func()
}

// New returns a Store on any distribution storage driver.
func New(driver storagedriver.StorageDriver, opts Options) *Store {
	if opts.UploadExpiry <= 0 {
		opts.UploadExpiry = 24 * time.Hour
	}
	s := &Store{driver: driver, files: driverFiles{driver}, uploadExpiry: opts.UploadExpiry, onTagMoved: opts.OnTagMoved, manifests: newManifestCache(opts.ManifestCacheBytes), boot: bootID()}
	s.gcGrace.Store(-1)
	return s
}

// NewFilesystem returns a Store on the filesystem driver rooted at dir.
func NewFilesystem(dir string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, err
	}
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: abs, MaxThreads: 100})
	s := New(d, opts)
	s.files = fsFiles{root: abs, cache: new(smallFileCache), driver: d, orderedRenames: renamesPersistInOrder(abs), slowMemory: new(slowMemory)}
	if err := makeBlobBuckets(filepath.Join(abs, filepath.FromSlash(blobsRoot), string(digest.SHA256))); err != nil {
		return nil, err
	}
	// A directory kiln cannot write to would otherwise only show on the
	// first push, as a 500.
	probe, err := os.CreateTemp(abs, ".kiln-write-check-*")
	if err != nil {
		return nil, fmt.Errorf("not writable: %w", err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return s, nil
}

// NewInMemory returns a Store held in memory, for tests.
func NewInMemory(opts Options) *Store {
	return New(inmemory.New(), opts)
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf) || errors.Is(err, os.ErrNotExist)
}

// exists reports whether something is stored at p.
func (s *Store) exists(ctx context.Context, p string) (bool, error) {
	_, _, err := s.files.stat(ctx, p)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}
