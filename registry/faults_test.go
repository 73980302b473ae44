package registry

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// faultyDriver is a storage driver that fails the operations a rule picks,
// standing in for a backend that is full, broken or not answering.
type faultyDriver struct {
	storagedriver.StorageDriver
	mu   sync.Mutex
	rule func(op, path string) error // nil: everything works
}

func (d *faultyDriver) fail(rule func(op, path string) error) {
	d.mu.Lock()
	d.rule = rule
	d.mu.Unlock()
}

func (d *faultyDriver) check(op, path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rule == nil {
		return nil
	}
	return d.rule(op, path)
}

func (d *faultyDriver) GetContent(ctx context.Context, p string) ([]byte, error) {
	if err := d.check("get", p); err != nil {
		return nil, err
	}
	return d.StorageDriver.GetContent(ctx, p)
}

func (d *faultyDriver) PutContent(ctx context.Context, p string, b []byte) error {
	if err := d.check("put", p); err != nil {
		return err
	}
	return d.StorageDriver.PutContent(ctx, p, b)
}

func (d *faultyDriver) Stat(ctx context.Context, p string) (storagedriver.FileInfo, error) {
	if err := d.check("stat", p); err != nil {
		return nil, err
	}
	return d.StorageDriver.Stat(ctx, p)
}

func (d *faultyDriver) Move(ctx context.Context, from, to string) error {
	if err := d.check("move", to); err != nil {
		return err
	}
	return d.StorageDriver.Move(ctx, from, to)
}

func (d *faultyDriver) Writer(ctx context.Context, p string, appendMode bool) (storagedriver.FileWriter, error) {
	w, err := d.StorageDriver.Writer(ctx, p, appendMode)
	if err != nil {
		return nil, err
	}
	return &faultyWriter{FileWriter: w, d: d, path: p}, nil
}

type faultyWriter struct {
	storagedriver.FileWriter
	d    *faultyDriver
	path string
}

func (w *faultyWriter) Write(b []byte) (int, error) {
	if err := w.d.check("write", w.path); err != nil {
		// Half the bytes reach the backend before it breaks.
		n, _ := w.FileWriter.Write(b[:len(b)/2])
		return n, err
	}
	return w.FileWriter.Write(b)
}

func (w *faultyWriter) Commit(ctx context.Context) error {
	if err := w.d.check("commit", w.path); err != nil {
		return err
	}
	return w.FileWriter.Commit(ctx)
}

// faultServer serves the API on a store over a faultyDriver and captures
// the log.
func faultServer(t *testing.T) (*httptest.Server, *faultyDriver, *storage.Store, *bytes.Buffer) {
	d := &faultyDriver{StorageDriver: inmemory.New()}
	store := storage.New(d, storage.Options{ManifestCacheBytes: -1})
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	srv := httptest.NewServer(New(store, Options{DeleteEnabled: true, Logger: logger}))
	t.Cleanup(srv.Close)
	return srv, d, store, &logs.buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// onPath fails op on paths containing sub with err.
func onPath(op, sub string, err error) func(string, string) error {
	return func(o, p string) error {
		if o == op && strings.Contains(p, sub) {
			return err
		}
		return nil
	}
}

// A backend fault gets a 5xx whose message says what kind of fault it was,
// a log line with the backend's own error, and nothing half-stored: once
// the backend recovers, what failed is absent and the same push succeeds.
func TestStorageFaults(t *testing.T) {
	t.Parallel()
	enospc := &fs.PathError{Op: "write", Path: "/blobs/x", Err: syscall.ENOSPC}
	eio := &fs.PathError{Op: "write", Path: "/uploads/x", Err: syscall.EIO}
	timeout := fmt.Errorf("storage backend: get: %w", os.ErrDeadlineExceeded)

	t.Run("monolithic blob, full backend at commit", func(t *testing.T) {
		srv, d, _, logs := faultServer(t)
		blob := []byte("layer that does not fit")
		dg := digest.FromBytes(blob)
		d.fail(onPath("move", "/blobs/", enospc))
		r := do(t, srv, "POST", "/v2/faults/blobs/uploads/?digest="+string(dg), blob)
		if r.status != http.StatusInsufficientStorage || r.errorCode() != "UNKNOWN" || !strings.Contains(r.errorMessage(), "full") {
			t.Fatalf("push on a full backend: %d %s", r.status, r.body)
		}
		if !strings.Contains(logs.String(), "no space left on device") {
			t.Errorf("log does not say what broke:\n%s", logs)
		}
		d.fail(nil)
		if r := do(t, srv, "HEAD", "/v2/faults/blobs/"+string(dg), nil); r.status != http.StatusNotFound {
			t.Fatalf("failed blob is visible: HEAD %d", r.status)
		}
		if entries, _ := d.List(t.Context(), "/uploads"); len(entries) != 0 {
			t.Errorf("failed monolithic push left upload data: %v", entries)
		}
		pushBlob(t, srv, "faults", blob)
	})

	t.Run("chunk, backend I/O error mid-write", func(t *testing.T) {
		srv, d, _, _ := faultServer(t)
		r := do(t, srv, "POST", "/v2/faults/blobs/uploads/", nil)
		if r.status != http.StatusAccepted {
			t.Fatalf("start upload: %d %s", r.status, r.body)
		}
		loc := r.header.Get("Location")
		chunk := bytes.Repeat([]byte("k"), 3<<20)
		d.fail(onPath("write", "/uploads/", eio))
		r = do(t, srv, "PATCH", loc, chunk, "Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("0-%d", len(chunk)-1))
		if r.status != http.StatusInternalServerError || r.errorCode() != "UNKNOWN" || !strings.Contains(r.errorMessage(), "I/O") {
			t.Fatalf("PATCH on a failing backend: %d %s", r.status, r.body)
		}
		d.fail(nil)
		// The session still says 0 bytes: the half-written chunk is not
		// counted, and sending it again at 0 completes the blob.
		r = do(t, srv, "GET", loc, nil)
		if r.status != http.StatusNoContent || r.header.Get("Range") != "" && r.header.Get("Range") != "0-0" {
			t.Fatalf("upload status after the fault: %d Range %q", r.status, r.header.Get("Range"))
		}
		r = do(t, srv, "PATCH", loc, chunk, "Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("0-%d", len(chunk)-1))
		if r.status != http.StatusAccepted {
			t.Fatalf("PATCH again: %d %s", r.status, r.body)
		}
		dg := digest.FromBytes(chunk)
		loc = r.header.Get("Location")
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		r = do(t, srv, "PUT", loc+sep+"digest="+string(dg), nil)
		if r.status != http.StatusCreated {
			t.Fatalf("close upload: %d %s", r.status, r.body)
		}
		r = do(t, srv, "GET", "/v2/faults/blobs/"+string(dg), nil)
		if r.status != http.StatusOK || digest.FromBytes(r.body) != dg {
			t.Fatalf("blob after retry: %d, %d bytes", r.status, len(r.body))
		}
	})

	t.Run("manifest PUT, tag write fails", func(t *testing.T) {
		srv, d, _, _ := faultServer(t)
		cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
		c := pushBlob(t, srv, "faults", cfg)
		l := pushBlob(t, srv, "faults", []byte("layer"))
		m := imageManifest(c, len(cfg), l)
		d.fail(onPath("put", "/_tags/v1", enospc))
		r := do(t, srv, "PUT", "/v2/faults/manifests/v1", m, "Content-Type", ociManifest)
		if r.status != http.StatusInsufficientStorage || r.errorCode() != "UNKNOWN" {
			t.Fatalf("manifest PUT on a full backend: %d %s", r.status, r.body)
		}
		d.fail(nil)
		if r := do(t, srv, "GET", "/v2/faults/manifests/v1", nil, "Accept", ociManifest); r.status != http.StatusNotFound || r.errorCode() != "MANIFEST_UNKNOWN" {
			t.Fatalf("tag whose PUT failed resolves: %d %s", r.status, r.body)
		}
		r = do(t, srv, "GET", "/v2/faults/tags/list", nil)
		if strings.Contains(string(r.body), `"v1"`) {
			t.Fatalf("tag whose PUT failed is listed: %s", r.body)
		}
		if r := do(t, srv, "PUT", "/v2/faults/manifests/v1", m, "Content-Type", ociManifest); r.status != http.StatusCreated {
			t.Fatalf("manifest PUT after recovery: %d %s", r.status, r.body)
		}
	})

	t.Run("manifest GET, backend times out", func(t *testing.T) {
		srv, d, _, logs := faultServer(t)
		pushImage(t, srv, "faults", "v1")
		d.fail(onPath("get", "/_tags/", timeout))
		r := do(t, srv, "GET", "/v2/faults/manifests/v1", nil, "Accept", ociManifest)
		if r.status != http.StatusServiceUnavailable || r.errorCode() != "UNKNOWN" || !strings.Contains(r.errorMessage(), "timed out") {
			t.Fatalf("GET on a backend that times out: %d %s", r.status, r.body)
		}
		if !strings.Contains(logs.String(), "store error") {
			t.Errorf("no log line for the fault:\n%s", logs)
		}
	})

	t.Run("blob GET, backend errors", func(t *testing.T) {
		srv, d, _, _ := faultServer(t)
		dg := pushBlob(t, srv, "faults", []byte("some layer"))
		d.fail(onPath("stat", "/blobs/", eio))
		r := do(t, srv, "GET", "/v2/faults/blobs/"+string(dg), nil)
		if r.status < 500 || r.errorCode() != "UNKNOWN" {
			t.Fatalf("blob GET on a failing backend: %d %s", r.status, r.body)
		}
		if bytes.Contains(r.body, []byte("some layer")) {
			t.Fatal("error answer carries blob bytes")
		}
	})
}

// A manifest whose stored bytes no longer match its digest is never served:
// the client gets a 500 that says so, and the log names the manifest.
func TestCorruptManifestIsNotServed(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	store, err := storage.NewFilesystem(root, storage.Options{ManifestCacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := httptest.NewServer(New(store, Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}))
	defer srv.Close()
	m, d := pushImage(t, srv, "corrupt", "v1")
	hex := d.Encoded()
	p := filepath.Join(root, "blobs", "sha256", hex[:2], hex)
	if err := os.WriteFile(p, bytes.Replace(m, []byte(`"layers"`), []byte(`"layerz"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	r := do(t, srv, "GET", "/v2/corrupt/manifests/v1", nil, "Accept", ociManifest)
	if r.status != http.StatusInternalServerError || r.errorCode() != "UNKNOWN" || !strings.Contains(r.errorMessage(), "corrupt") {
		t.Fatalf("GET of a corrupt manifest: %d %s", r.status, r.body)
	}
	if !strings.Contains(logs.buf.String(), string(d)) {
		t.Errorf("the log does not name the corrupt manifest:\n%s", logs.buf.String())
	}
}
