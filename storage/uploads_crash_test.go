package storage

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

// Intermediate chunks are not fsynced: a power loss may take any part of
// what was acknowledged, and may leave the data file at its length with
// other content. These tests cut or spoil the data file after the chunks
// were acknowledged, as such a crash would, and check that the session then
// claims no more than survived, that resuming from its offset gives the
// right blob, and that no blob is ever published with wrong content.

// crashChunks are the chunks pushed before the simulated crash.
var crashChunks = []int{3000, 5000, 7000, 4000}

// pushCrashChunks opens a session on a fresh filesystem store and appends
// crashChunks; it returns the store's directory, the session and the
// whole content (the chunks and a last part the client still has to send).
func pushCrashChunks(t *testing.T) (string, *Upload, []byte) {
	t.Helper()
	dir := t.TempDir()
	s, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	u, err := s.NewUpload(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 0, 25000)
	for i := range 25000 {
		content = append(content, byte(i*31+i/7))
	}
	off := 0
	for _, n := range crashChunks {
		if u, err = s.AppendUpload(ctx, "r", u.ID, int64(off), bytes.NewReader(content[off:off+n])); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if u.Size != int64(off) {
		t.Fatalf("size %d after the chunks, want %d", u.Size, off)
	}
	return dir, u, content
}

// afterCrash opens the store again as a restarted kiln; rebooted says
// whether the machine went down too (then unsynced data may be lost).
func afterCrash(t *testing.T, dir string, rebooted bool) *Store {
	t.Helper()
	s, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rebooted {
		s.boot = "rebooted"
	}
	return s
}

// resume asks for the session's offset, checks it is at most survived,
// sends the rest and checks the published blob.
func resume(t *testing.T, s *Store, id string, content []byte, survived int64) {
	t.Helper()
	ctx := t.Context()
	u, err := s.GetUpload(ctx, "r", id)
	if err != nil {
		t.Fatalf("status after the crash: %v", err)
	}
	if u.Size > survived {
		t.Fatalf("offset %d after the crash, only %d bytes survived", u.Size, survived)
	}
	d := digest.FromBytes(content)
	if _, err := s.FinishUpload(ctx, "r", id, u.Size, bytes.NewReader(content[u.Size:]), d); err != nil {
		t.Fatalf("resumed at %d: %v", u.Size, err)
	}
	got, err := s.files.readAll(ctx, blobPath(d))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("resumed at %d: blob of %d bytes differs (%v)", u.Size, len(got), err)
	}
}

func TestUploadCrashCutsData(t *testing.T) {
	t.Parallel()
	acked := int64(0)
	for _, n := range crashChunks {
		acked += int64(n)
	}
	for _, rebooted := range []bool{false, true} {
		for _, cut := range []int64{0, 1, 2999, 3000, 3001, 9000, 14999, 15000, acked - 1, acked} {
			dir, u, content := pushCrashChunks(t)
			if err := os.Truncate(afterCrash(t, dir, false).localPath(uploadDataPath(u.ID)), cut); err != nil {
				t.Fatal(err)
			}
			resume(t, afterCrash(t, dir, rebooted), u.ID, content, cut)
		}
	}
}

// After a reboot the data file may keep its length but not its content
// (zeros where the disk never got the bytes; here, flipped bits): the session goes back to the
// last chunk end whose content checks out.
func TestUploadCrashSpoilsData(t *testing.T) {
	t.Parallel()
	for _, spoilAt := range []int64{0, 2999, 3000, 8000, 14999, 18999} {
		dir, u, content := pushCrashChunks(t)
		f, err := os.OpenFile(afterCrash(t, dir, false).localPath(uploadDataPath(u.ID)), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte{^content[spoilAt]}, spoilAt)
		f.Close()
		resume(t, afterCrash(t, dir, true), u.ID, content, spoilAt)
	}
}

// A client that does not ask for the offset and sends its last chunk
// anyway gets an error, never a blob with the spoiled content.
func TestUploadCrashNeverPublishesWrongContent(t *testing.T) {
	t.Parallel()
	dir, u, content := pushCrashChunks(t)
	acked := u.Size
	f, err := os.OpenFile(afterCrash(t, dir, false).localPath(uploadDataPath(u.ID)), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	spoilt := bytes.Clone(content[9000:9100])
	for i := range spoilt {
		spoilt[i] = ^spoilt[i]
	}
	f.WriteAt(spoilt, 9000)
	f.Close()
	s := afterCrash(t, dir, true)
	ctx := t.Context()
	d := digest.FromBytes(content)
	if _, err := s.FinishUpload(ctx, "r", u.ID, acked, bytes.NewReader(content[acked:]), d); !errors.Is(err, ErrUploadOutOfOrder) {
		t.Errorf("last chunk at the acknowledged offset: %v, want out of order", err)
	}
	if _, err := s.FinishUpload(ctx, "r", u.ID, -1, bytes.NewReader(content[acked:]), d); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("last chunk without an offset: %v, want digest mismatch", err)
	}
	if has, _ := s.HasBlob(ctx, d); has {
		t.Error("blob published")
	}
}

// The state itself is not fsynced either: after a power loss it may be
// empty or cut. The session is then unknown and the client starts again.
func TestUploadCrashSpoilsState(t *testing.T) {
	t.Parallel()
	for _, keep := range []int64{0, 10} {
		dir, u, _ := pushCrashChunks(t)
		s := afterCrash(t, dir, true)
		if err := os.Truncate(s.localPath(uploadStatePath(u.ID)), keep); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUpload(t.Context(), "r", u.ID); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("state cut to %d bytes: %v, want upload unknown", keep, err)
		}
	}
}

// A long upload keeps a bounded number of marks, and still cuts back to
// one before the damage.
func TestUploadCrashManyChunks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	u, err := s.NewUpload(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 100*100)
	for i := range content {
		content[i] = byte(i*13 + i/251)
	}
	for off := 0; off < len(content)-100; off += 100 {
		if u, err = s.AppendUpload(ctx, "r", u.ID, int64(off), bytes.NewReader(content[off:off+100])); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.loadUploadState(ctx, "r", u.ID)
	if err != nil || len(st.Marks) > maxMarks {
		t.Fatalf("%d marks (%v), want at most %d", len(st.Marks), err, maxMarks)
	}
	f, err := os.OpenFile(s.localPath(uploadDataPath(u.ID)), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{^content[7777]}, 7777)
	f.Close()
	resume(t, afterCrash(t, dir, true), u.ID, content, 7777)
}
