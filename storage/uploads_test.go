package storage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func eachStore(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Helper()
	fs, err := NewFilesystem(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"filesystem": fs, "inmemory": NewInMemory(Options{})} {
		t.Run(name, func(t *testing.T) { f(t, s) })
	}
	// On a fresh prefix of the S3 test bucket (see main_test.go).
	t.Run("s3", func(t *testing.T) {
		serialS3(t)
		f(t, newS3Store(t, Options{}))
	})
}

func readBlob(t *testing.T, s *Store, d digest.Digest) []byte {
	t.Helper()
	rc, err := s.OpenBlob(t.Context(), d, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return b
}

// failingReader yields some bytes then fails, like a client that hangs up.
type failingReader struct{ data []byte }

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("connection reset")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestUploadChunksAndFailedChunk(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, err := s.NewUpload(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendUpload(ctx, "r", u.ID, 0, strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
		// A chunk that breaks off is not kept: the session stays at 3 bytes.
		if _, err := s.AppendUpload(ctx, "r", u.ID, 3, &failingReader{[]byte("garbage")}); err == nil {
			t.Fatal("failed chunk accepted")
		}
		got, err := s.GetUpload(ctx, "r", u.ID)
		if err != nil || got.Size != 3 {
			t.Fatalf("after failed chunk: %+v %v", got, err)
		}
		if _, err := s.AppendUpload(ctx, "r", u.ID, 5, strings.NewReader("x")); !errors.Is(err, ErrUploadOutOfOrder) {
			t.Errorf("out of order: %v", err)
		}
		d := digest.FromString("abcdef")
		if _, err := s.FinishUpload(ctx, "r", u.ID, -1, strings.NewReader("def"), d); err != nil {
			t.Fatal(err)
		}
		if b := readBlob(t, s, d); string(b) != "abcdef" {
			t.Errorf("blob: %q", b)
		}
		if n, err := s.BlobSize(ctx, "r", d); err != nil || n != 6 {
			t.Errorf("BlobSize: %d %v", n, err)
		}
		if _, err := s.GetUpload(ctx, "r", u.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("finished session still open: %v", err)
		}
	})
}

// A session lives in the store: a new Store on the same directory (a
// restarted kiln, or another instance) continues it.
func TestUploadSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1, _ := NewFilesystem(dir, Options{})
	ctx := t.Context()
	u, _ := s1.NewUpload(ctx, "r")
	part := bytes.Repeat([]byte("k"), 3<<20)
	if _, err := s1.AppendUpload(ctx, "r", u.ID, 0, bytes.NewReader(part)); err != nil {
		t.Fatal(err)
	}
	// Bytes written after the last acknowledged chunk (a crash mid-PATCH)
	// are dropped when the session continues.
	f, _ := os.OpenFile(s1.localPath(uploadDataPath(u.ID)), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("unacknowledged"))
	f.Close()

	s2, _ := NewFilesystem(dir, Options{})
	got, err := s2.GetUpload(ctx, "r", u.ID)
	if err != nil || got.Size != int64(len(part)) {
		t.Fatalf("restarted: %+v %v", got, err)
	}
	all := append(append([]byte{}, part...), []byte("tail")...)
	d := digest.FromBytes(all)
	if _, err := s2.FinishUpload(ctx, "r", u.ID, int64(len(part)), strings.NewReader("tail"), d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s2, d), all) {
		t.Error("content differs after resume")
	}
}

func TestUploadExpiry(t *testing.T) {
	t.Parallel()
	s, _ := NewFilesystem(t.TempDir(), Options{UploadExpiry: time.Hour})
	ctx := t.Context()
	old, _ := s.NewUpload(ctx, "r")
	fresh, _ := s.NewUpload(ctx, "r")
	st, _ := s.loadUploadState(ctx, "r", old.ID)
	st.UpdatedAt = time.Now().Add(-2 * time.Hour)
	b := []byte(`{"repo":"r","size":0,"hashState":null,"startedAt":"2020-01-01T00:00:00Z","updatedAt":"` + st.UpdatedAt.UTC().Format(time.RFC3339Nano) + `"}`)
	if err := s.driver.PutContent(ctx, uploadStatePath(old.ID), b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUpload(ctx, "r", old.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("expired session still usable: %v", err)
	}
	n, err := s.PurgeUploads(ctx)
	if err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if _, err := s.GetUpload(ctx, "r", fresh.ID); err != nil {
		t.Errorf("fresh session purged: %v", err)
	}
}

func TestPutBlobVerifiesBeforeVisible(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		wrong := digest.FromString("other")
		if _, err := s.PutBlob(ctx, "r", wrong, strings.NewReader("content")); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("mismatch: %v", err)
		}
		if ok, _ := s.HasBlob(ctx, wrong); ok {
			t.Error("mismatched blob visible")
		}
		// No upload debris is left behind.
		if entries, _ := s.driver.List(ctx, uploadsRoot); len(entries) != 0 {
			t.Errorf("leftover uploads: %v", entries)
		}
		d := digest.FromString("content")
		if _, err := s.PutBlob(ctx, "r", d, strings.NewReader("content")); err != nil {
			t.Fatal(err)
		}
		// The same content in a second repository is stored once.
		if _, err := s.PutBlob(ctx, "r2", d, strings.NewReader("content")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BlobSize(ctx, "r2", d); err != nil {
			t.Error(err)
		}
	})
}
