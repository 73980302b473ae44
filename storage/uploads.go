package storage

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"
)

// Upload describes an open upload session.
type Upload struct {
	ID        string
	Repo      string
	Size      int64 // bytes received and acknowledged so far
	StartedAt time.Time
}

// uploadState is the session's record in the store: everything another
// process needs to continue the upload, including the running SHA-256.
type uploadState struct {
	Repo      string    `json:"repo"`
	Size      int64     `json:"size"`
	HashState []byte    `json:"hashState"`
	StartedAt time.Time `json:"startedAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// copyBufSize and copyBufs size the ring copyHashing streams through: the
// hashing goroutine works on one buffer while the next are read and
// written.
const (
	copyBufSize = 1 << 20
	copyBufs    = 3
)

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// NewUpload opens an upload session for repo.
func (s *Store) NewUpload(ctx context.Context, repo string) (*Upload, error) {
	now := time.Now().UTC()
	st := &uploadState{Repo: repo, StartedAt: now, UpdatedAt: now}
	h := sha256.New()
	if err := saveHash(st, h); err != nil {
		return nil, err
	}
	id := uuid.NewString()
	if err := s.saveUploadState(ctx, id, st); err != nil {
		return nil, err
	}
	return st.upload(id), nil
}

func (st *uploadState) upload(id string) *Upload {
	return &Upload{ID: id, Repo: st.Repo, Size: st.Size, StartedAt: st.StartedAt}
}

// GetUpload returns the session id of repo, ErrUploadUnknown when there is
// none (or it expired, or it belongs to another repository).
func (s *Store) GetUpload(ctx context.Context, repo, id string) (*Upload, error) {
	st, err := s.loadUploadState(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	return st.upload(id), nil
}

// AppendUpload streams r to the end of session id. When offset is not
// negative it must equal the session's size, else ErrUploadOutOfOrder is
// returned with the current session. On any error the session keeps what it
// had before the call.
func (s *Store) AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (*Upload, error) {
	unlock := s.lockUpload(id)
	defer unlock()
	st, err := s.loadUploadState(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	if offset >= 0 && offset != st.Size {
		return st.upload(id), ErrUploadOutOfOrder
	}
	if err := s.appendData(ctx, id, st, r, false); err != nil {
		return st.upload(id), err
	}
	if err := s.saveUploadState(ctx, id, st); err != nil {
		return nil, err
	}
	return st.upload(id), nil
}

// FinishUpload appends r (the optional last chunk; may be nil), checks that
// the whole content has digest d, and moves it into the store under d,
// linked into repo. On a mismatch the session is removed and
// ErrDigestMismatch returned.
func (s *Store) FinishUpload(ctx context.Context, repo, id string, offset int64, r io.Reader, d digest.Digest) (*Upload, error) {
	if err := checkAlgorithm(d); err != nil {
		return nil, err
	}
	unlock := s.lockUpload(id)
	defer unlock()
	st, err := s.loadUploadState(ctx, repo, id)
	if err != nil {
		return nil, err
	}
	if offset >= 0 && offset != st.Size {
		return st.upload(id), ErrUploadOutOfOrder
	}
	if r == nil {
		r = eofReader{}
	}
	if err := s.appendData(ctx, id, st, r, true); err != nil {
		return st.upload(id), err
	}
	if err := s.commitData(ctx, id, st, d); err != nil {
		if errors.Is(err, ErrDigestMismatch) {
			s.driver.Delete(ctx, path.Join(uploadsRoot, id))
		}
		return nil, err
	}
	return st.upload(id), s.driver.Delete(ctx, path.Join(uploadsRoot, id))
}

// PutBlob stores the whole content of r as blob d in repo (a monolithic
// upload), verifying the digest before anything becomes visible.
func (s *Store) PutBlob(ctx context.Context, repo string, d digest.Digest, r io.Reader) (int64, error) {
	if err := checkAlgorithm(d); err != nil {
		return 0, err
	}
	id := uuid.NewString()
	now := time.Now().UTC()
	st := &uploadState{Repo: repo, StartedAt: now, UpdatedAt: now}
	defer s.driver.Delete(context.WithoutCancel(ctx), path.Join(uploadsRoot, id))
	if err := saveHash(st, sha256.New()); err != nil {
		return 0, err
	}
	if err := s.appendData(ctx, id, st, r, true); err != nil {
		return 0, err
	}
	if err := s.commitData(ctx, id, st, d); err != nil {
		return 0, err
	}
	return st.Size, nil
}

// CancelUpload removes session id and what it received.
func (s *Store) CancelUpload(ctx context.Context, repo, id string) error {
	unlock := s.lockUpload(id)
	defer unlock()
	if _, err := s.loadUploadState(ctx, repo, id); err != nil {
		return err
	}
	return s.driver.Delete(ctx, path.Join(uploadsRoot, id))
}

// PurgeUploads removes sessions idle for longer than the store's expiry and
// returns how many it removed.
func (s *Store) PurgeUploads(ctx context.Context) (int, error) {
	entries, err := s.driver.List(ctx, uploadsRoot)
	if err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	cutoff := time.Now().Add(-s.uploadExpiry)
	purged := 0
	for _, dir := range entries {
		id := path.Base(dir)
		if s.uploadActive(ctx, id, cutoff) {
			continue
		}
		if err := s.driver.Delete(ctx, dir); err == nil {
			purged++
		}
	}
	return purged, nil
}

func (s *Store) uploadActive(ctx context.Context, id string, cutoff time.Time) bool {
	b, err := s.driver.GetContent(ctx, uploadStatePath(id))
	if err == nil {
		var st uploadState
		if json.Unmarshal(b, &st) == nil {
			return st.UpdatedAt.After(cutoff)
		}
		return false
	}
	// A monolithic upload has data but no state; its age is the data's.
	fi, err := s.driver.Stat(ctx, uploadDataPath(id))
	return err == nil && fi.ModTime().After(cutoff)
}

func (s *Store) lockUpload(id string) func() {
	m, _ := s.uploadLocks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func (s *Store) loadUploadState(ctx context.Context, repo, id string) (*uploadState, error) {
	if err := uuid.Validate(id); err != nil {
		return nil, ErrUploadUnknown
	}
	b, err := s.driver.GetContent(ctx, uploadStatePath(id))
	if err != nil {
		if isNotFound(err) {
			return nil, ErrUploadUnknown
		}
		return nil, err
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("upload %s: corrupt state: %w", id, err)
	}
	if st.Repo != repo || time.Since(st.UpdatedAt) > s.uploadExpiry {
		return nil, ErrUploadUnknown
	}
	// Durability: a session whose data holds fewer bytes than it
	// acknowledged cannot be continued. This is what a crash leaves between
	// FinishUpload moving the data into the blob store and removing the
	// session; appending to it would write zeros up to the old size under
	// a hash state that claims the real bytes.
	if s.localRoot != "" && st.Size > 0 {
		fi, err := os.Stat(s.localPath(uploadDataPath(id)))
		if err != nil || fi.Size() < st.Size {
			return nil, ErrUploadUnknown
		}
	}
	return &st, nil
}

func (s *Store) saveUploadState(ctx context.Context, id string, st *uploadState) error {
	st.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.putContent(ctx, uploadStatePath(id), b)
}

func saveHash(st *uploadState, h hash.Hash) error {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	st.HashState = b
	return nil
}

func restoreHash(st *uploadState) (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.HashState); err != nil {
		return nil, fmt.Errorf("corrupt hash state: %w", err)
	}
	return h, nil
}

// appendData streams r onto the session's data while hashing it, and makes
// it durable before returning; st's size and hash state then include it.
// final marks the last write, after which the data is committed.
func (s *Store) appendData(ctx context.Context, id string, st *uploadState, r io.Reader, final bool) error {
	h, err := restoreHash(st)
	if err != nil {
		return err
	}
	var n int64
	if s.localRoot != "" {
		n, err = s.appendLocal(id, st.Size, h, r)
	} else {
		n, err = s.appendDriver(ctx, id, st.Size, h, r, final)
	}
	if err != nil {
		return err
	}
	st.Size += n
	return saveHash(st, h)
}

// appendLocal writes at offset size of the session's file. Bytes past size
// (left by a write that was never acknowledged) are cut off first, and again
// if this write fails, so the file always matches the saved state.
func (s *Store) appendLocal(id string, size int64, h hash.Hash, r io.Reader) (int64, error) {
	p := s.localPath(uploadDataPath(id))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := copyHashing(&writebackWriter{f: f, off: size}, h, r)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Truncate(size)
		return 0, err
	}
	return n, nil
}

// writebackWriter writes to f from off on, starting the disk write of
// each piece as soon as it is in the page cache (see startWriteback): the
// disk then works while the rest of the upload arrives, instead of all at
// the final fsync.
type writebackWriter struct {
	f   *os.File
	off int64
}

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if n > 0 {
		startWriteback(w.f, w.off, int64(n))
		w.off += int64(n)
	}
	return n, err
}

// appendDriver appends through the storage driver's resumable writer.
// Drivers cannot cut a file back, so the chunk is first spooled to a local
// temporary file: a body that breaks off never reaches the store.
func (s *Store) appendDriver(ctx context.Context, id string, size int64, h hash.Hash, r io.Reader, final bool) (int64, error) {
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
	w, err := s.driver.Writer(ctx, uploadDataPath(id), size > 0)
	if err != nil {
		return 0, err
	}
	if w.Size() != size {
		w.Close()
		return 0, fmt.Errorf("upload %s: stored %d bytes, state says %d", id, w.Size(), size)
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

// restoreHashFrom returns a copy of h to hash into, so h itself only moves
// on when a chunk was stored whole.
func restoreHashFrom(h hash.Hash) (hash.Hash, error) {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	c := sha256.New()
	return c, c.(encoding.BinaryUnmarshaler).UnmarshalBinary(b)
}

func copyHashState(dst, src hash.Hash) {
	b, _ := src.(encoding.BinaryMarshaler).MarshalBinary()
	dst.(encoding.BinaryUnmarshaler).UnmarshalBinary(b)
}

// copyHashing copies r to w and hashes what it copies into h, returning
// the bytes copied. Hashing runs in a second goroutine, overlapped with
// reading and writing (in series, as io.MultiWriter did, SHA-256 and the
// write syscalls added up): each buffer read is handed to the hasher and
// written at the same time, and is read into again only once both are
// done. On an error h may have hashed more than was written; callers then
// discard it.
func copyHashing(w io.Writer, h hash.Hash, r io.Reader) (int64, error) {
	var ring [copyBufs]*[]byte
	free := make(chan []byte, copyBufs)
	for i := range ring {
		ring[i] = copyBuffers.Get().(*[]byte)
		free <- *ring[i]
	}
	defer func() {
		for _, b := range ring {
			copyBuffers.Put(b)
		}
	}()
	work := make(chan []byte, copyBufs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range work {
			h.Write(b)
			free <- b[:cap(b)]
		}
	}()
	var total int64
	var err error
	for {
		buf := <-free
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			work <- buf[:n]
			if _, werr := w.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(work)
	<-done // the hasher is finished with every buffer
	return total, err
}

// commitData verifies the session's content against d and moves it to the
// blob store, then links it into the repository.
func (s *Store) commitData(ctx context.Context, id string, st *uploadState, d digest.Digest) error {
	var got digest.Digest
	if d.Algorithm() == digest.SHA256 {
		h, err := restoreHash(st)
		if err != nil {
			return err
		}
		got = digest.NewDigest(digest.SHA256, h)
	} else {
		// Only SHA-256 is hashed while streaming; others are rare enough
		// to afford reading the data again.
		rc, err := s.driver.Reader(ctx, uploadDataPath(id), 0)
		if err != nil {
			return err
		}
		got, err = d.Algorithm().FromReader(rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	if got != d {
		return ErrDigestMismatch
	}
	has, err := s.HasBlob(ctx, d)
	if err != nil {
		return err
	}
	if !has {
		if err := s.moveIntoPlace(ctx, uploadDataPath(id), blobPath(d)); err != nil {
			return err
		}
	}
	return s.putContent(ctx, layerLinkPath(st.Repo, d), []byte(d))
}

// moveIntoPlace renames a verified file to its final path, durably.
func (s *Store) moveIntoPlace(ctx context.Context, from, to string) error {
	if s.localRoot == "" {
		return s.driver.Move(ctx, from, to)
	}
	dst := s.localPath(to)
	if err := mkdirDurable(filepath.Dir(dst)); err != nil {
		return err
	}
	if err := os.Rename(s.localPath(from), dst); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

// putContent is driver.PutContent (on the filesystem: temporary file,
// fsync, rename, fsync of the directory) whose parent directories, when it
// has to create them, are themselves durable: the driver creates them with
// os.MkdirAll, whose new entries only reach the disk with their parent's
// next fsync.
func (s *Store) putContent(ctx context.Context, p string, content []byte) error {
	if err := s.prepareDir(p); err != nil {
		return err
	}
	return s.driver.PutContent(ctx, p, content)
}

// prepareDir durably creates the directory that will hold p on the
// filesystem store; elsewhere there are no directories to create.
func (s *Store) prepareDir(p string) error {
	if s.localRoot == "" {
		return nil
	}
	return mkdirDurable(filepath.Dir(s.localPath(p)))
}

// deleteContent removes p and, on the filesystem store, fsyncs the
// directory that held it, so an acknowledged delete survives a power loss.
func (s *Store) deleteContent(ctx context.Context, p string) error {
	if err := s.driver.Delete(ctx, p); err != nil {
		return err
	}
	if s.localRoot == "" {
		return nil
	}
	return syncDir(filepath.Dir(s.localPath(p)))
}

// mkdirDurable creates dir and any missing parent, fsyncing the parent of
// each directory it creates. Existing directories cost one stat.
func mkdirDurable(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	// Also when another request created it meanwhile: it may not have
	// synced the parent yet.
	return syncDir(parent)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func checkAlgorithm(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return err
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	}
	return ErrUnsupportedAlgo
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
