package storage

import (
	"context"
	"errors"
	"hash"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// errFault is what faultyFiles answers: a disk that fails, an S3 endpoint
// that refuses.
var errFault = errors.New("injected backend fault")

// faultyFiles fails every read and write of a path under prefix, so tests
// reach the store's error paths above both backends (the driver-level
// fakes never reach the filesystem store's own reads and writes). Faults
// inside a backend are in backend_faults_test.go.
type faultyFiles struct {
	backend
	prefix string
}

func (b faultyFiles) fails(p string) bool { return strings.HasPrefix(p, b.prefix) }

func (b faultyFiles) stat(ctx context.Context, p string) (int64, time.Time, error) {
	if b.fails(p) {
		return 0, time.Time{}, errFault
	}
	return b.backend.stat(ctx, p)
}

func (b faultyFiles) open(ctx context.Context, p string, offset int64) (io.ReadCloser, error) {
	if b.fails(p) {
		return nil, errFault
	}
	return b.backend.open(ctx, p, offset)
}

func (b faultyFiles) read(ctx context.Context, p string) ([]byte, error) {
	if b.fails(p) {
		return nil, errFault
	}
	return b.backend.read(ctx, p)
}

func (b faultyFiles) names(ctx context.Context, p string) ([]string, error) {
	if b.fails(p) {
		return nil, errFault
	}
	return b.backend.names(ctx, p)
}

func (b faultyFiles) readAll(ctx context.Context, p string) ([]byte, error) {
	if b.fails(p) {
		return nil, errFault
	}
	return b.backend.readAll(ctx, p)
}

func (b faultyFiles) touch(ctx context.Context, p string, content func() ([]byte, error)) error {
	if b.fails(p) {
		return errFault
	}
	return b.backend.touch(ctx, p, content)
}

func (b faultyFiles) move(ctx context.Context, from, to string) error {
	if b.fails(from) || b.fails(to) {
		return errFault
	}
	return b.backend.move(ctx, from, to)
}

// localPath is where the filesystem store s keeps p.
func (s *Store) localPath(p string) string { return s.files.(fsFiles).local(p) }

func (b faultyFiles) moveOut(ctx context.Context, from, to string) error {
	if b.fails(from) || b.fails(to) {
		return errFault
	}
	return b.backend.moveOut(ctx, from, to)
}

func (b faultyFiles) remove(ctx context.Context, p string) error {
	if b.fails(p) {
		return errFault
	}
	return b.backend.remove(ctx, p)
}

func (b faultyFiles) removeAll(ctx context.Context, p string) error {
	if b.fails(p) {
		return errFault
	}
	return b.backend.removeAll(ctx, p)
}

func (b faultyFiles) write(ctx context.Context, p string, content []byte) error {
	if b.fails(p) {
		return errFault
	}
	return b.backend.write(ctx, p, content)
}

func (b faultyFiles) writeInOrder(ctx context.Context, groups ...[]smallFile) error {
	for _, g := range groups {
		for _, f := range g {
			if b.fails(f.path) {
				return errFault
			}
		}
	}
	return b.backend.writeInOrder(ctx, groups...)
}

func (b faultyFiles) appendAt(ctx context.Context, p string, size int64, h hash.Hash, r io.Reader, final bool) (int64, error) {
	if b.fails(p) {
		return 0, errFault
	}
	return b.backend.appendAt(ctx, p, size, h, r, final)
}

func (b faultyFiles) clock(ctx context.Context) (time.Time, time.Duration, error) {
	if b.fails(trashClockPath()) {
		return time.Time{}, 0, errFault
	}
	return b.backend.clock(ctx)
}

// backendStores runs f on a store of each backend: the filesystem's own
// and a storage driver's.
func backendStores(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run("filesystem", func(t *testing.T) {
		t.Parallel()
		s, err := NewFilesystem(t.TempDir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.files.(fsFiles); !ok {
			t.Fatalf("filesystem store reads through %T", s.files)
		}
		f(t, s)
	})
	t.Run("driver", func(t *testing.T) {
		t.Parallel()
		s := NewInMemory(Options{})
		if _, ok := s.files.(driverFiles); !ok {
			t.Fatalf("driver store reads through %T", s.files)
		}
		f(t, s)
	})
}

// A failing backend is an error to the caller, never "not found": a
// registry that answered 404 would make clients push again, or a cache
// fetch upstream, on a disk error.
func TestReadFaultsReachCallers(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		img := pushImage(t, s, "app", "v1", "a", nil)
		if err := s.MarkProxied(ctx, "app"); err != nil {
			t.Fatal(err)
		}
		s.manifests = newManifestCache(-1) // every read goes to the backend
		reads := map[string]func() error{
			"BlobSize": func() error { _, err := s.BlobSize(ctx, "app", img.layer); return err },
			"HasBlob":  func() error { _, err := s.HasBlob(ctx, img.layer); return err },
			"OpenBlob": func() error {
				rc, err := s.OpenBlob(ctx, img.layer, 0)
				if err == nil {
					rc.Close()
				}
				return err
			},
			"GetManifest": func() error { _, err := s.GetManifest(ctx, "app", img.manifest); return err },
			"ResolveTag":  func() error { _, err := s.ResolveTag(ctx, "app", "v1"); return err },
			"Tags":        func() error { _, err := s.Tags(ctx, "app"); return err },
			"TagAge":      func() error { _, err := s.TagAge(ctx, "app", "v1"); return err },
			"IsProxied":   func() error { _, _, err := s.IsProxied(ctx, "app"); return err },
		}
		healthy := s.files
		for name, read := range reads {
			if err := read(); err != nil {
				t.Errorf("%s on a healthy backend: %v", name, err)
			}
		}
		s.files = faultyFiles{healthy, "/"}
		for name, read := range reads {
			if err := read(); !errors.Is(err, errFault) {
				t.Errorf("%s on a failing backend: err %v, want the backend's error", name, err)
			}
		}
	})
}

// On the filesystem, blobs are served as *os.File (sendfile); through a
// driver, by its reader.
func TestOpenBlobBackends(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		img := pushImage(t, s, "app", "v1", "a", nil)
		rc, err := s.OpenBlob(t.Context(), img.layer, 6)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		_, isFile := rc.(*os.File)
		_, onFS := s.files.(fsFiles)
		if want := onFS; isFile != want {
			t.Errorf("reader %T: *os.File %v, want %v", rc, isFile, want)
		}
		b, err := io.ReadAll(rc)
		if err != nil || !strings.HasPrefix(string(b), "a\nlayer a\n") {
			t.Errorf("from offset 6: %q %v", b[:min(len(b), 20)], err)
		}
	})
}

// Faults in one part of the store reach the callers that depend on it:
// a manifest's bytes, a link's refresh, the trash a missing blob is
// looked for in.
func TestPartialFaultsReachCallers(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		img := pushImage(t, s, "app", "v1", "a", nil)
		s.manifests = newManifestCache(-1)
		healthy := s.files

		s.files = faultyFiles{healthy, blobsRoot}
		if _, err := s.GetManifest(ctx, "app", img.manifest); !errors.Is(err, errFault) {
			t.Errorf("GetManifest with failing blobs: %v", err)
		}

		s.files = faultyFiles{healthy, layerLinkPath("app", img.layer)}
		if err := s.TouchBlobLink(ctx, "app", img.layer); !errors.Is(err, errFault) {
			t.Errorf("TouchBlobLink with a failing link: %v", err)
		}

		s.files = healthy
		missing := pushImage(t, s, "app", "v2", "b", nil).layer
		if err := s.files.remove(ctx, blobPath(missing)); err != nil {
			t.Fatal(err)
		}
		s.files = faultyFiles{healthy, trashRoot}
		if _, err := s.OpenBlob(ctx, missing, 0); !errors.Is(err, errFault) {
			t.Errorf("OpenBlob of a blob missing, with a failing trash: %v", err)
		}

		s.files = healthy
		if _, err := s.OpenBlob(ctx, missing, 0); !errors.Is(err, ErrBlobUnknown) {
			t.Errorf("OpenBlob of a blob missing: %v, want ErrBlobUnknown", err)
		}
	})
}
