package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
)

// Where intermediate chunks are not fsynced (the filesystem store), only
// the final PUT waits for the disk: a client that loses its connection, or
// a restarted kiln, asks for the session's offset, so the session need
// only never claim more than its data holds. The state records the boot
// it was written in and the ends of earlier chunks with their hash states
// (marks). On loading a session, recoverUpload cuts it back to what the
// data still holds:
//   - in the same boot the page cache holds every byte written, even after
//     kiln was killed: only a data file shorter than the state (cut by
//     hand) loses chunks;
//   - after a reboot any unsynced byte may be gone, or a file may keep its
//     length over zeros: the data is hashed again and the session goes
//     back to the last mark whose hash matches.
// Bytes past the offset are cut off by the next append (appendAt); a
// final PUT fsyncs all the data before the blob becomes visible.

// maxMarks bounds the marks a state keeps: past it, every second one goes,
// so the state stays small while what a crash can cost grows with the
// upload.
const maxMarks = 16

// mark records the session's current end before a chunk is appended.
func (st *uploadState) mark() {
	if st.Size == 0 || (len(st.Marks) > 0 && st.Marks[len(st.Marks)-1].Size == st.Size) {
		return
	}
	st.Marks = append(st.Marks, uploadMark{Size: st.Size, HashState: st.HashState})
	if len(st.Marks) > maxMarks {
		kept := st.Marks[:0]
		for i, m := range st.Marks {
			if i%2 == 1 {
				kept = append(kept, m)
			}
		}
		st.Marks = kept
	}
}

// recoverUpload cuts st back to the data that survived (see above). Data
// that is gone altogether was moved into the blob store by a finished
// upload (a crash before the session was removed): the session is unknown.
func (s *Store) recoverUpload(ctx context.Context, id string, st *uploadState) error {
	if st.Size == 0 {
		return nil
	}
	p := uploadDataPath(id)
	held, _, err := s.files.stat(ctx, p)
	if err != nil {
		if isNotFound(err) {
			return ErrUploadUnknown
		}
		return err
	}
	marks := append(st.Marks[:len(st.Marks):len(st.Marks)], uploadMark{Size: st.Size, HashState: st.HashState})
	if st.Boot == s.boot {
		if held >= st.Size {
			return nil
		}
		st.cutTo(marks, func(m uploadMark) bool { return m.Size <= held })
		return nil
	}
	rc, err := s.files.open(ctx, p, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	h, hashed := sha256.New(), int64(0)
	st.cutTo(marks, func(m uploadMark) bool {
		if m.Size > held {
			return false
		}
		if n, err := io.CopyN(h, rc, m.Size-hashed); err != nil {
			hashed += n
			held = hashed // read no further
			return false
		}
		hashed = m.Size
		want, err := restoreHash(&uploadState{HashState: m.HashState})
		return err == nil && bytes.Equal(h.Sum(nil), want.Sum(nil))
	})
	return nil
}

// cutTo moves st back to the last of marks, in order, up to the first that
// does not hold (or to the start), dropping the marks after it.
func (st *uploadState) cutTo(marks []uploadMark, holds func(uploadMark) bool) {
	st.Size, st.HashState, st.Marks = 0, nil, nil
	for i, m := range marks {
		if !holds(m) {
			break
		}
		st.Size, st.HashState, st.Marks = m.Size, m.HashState, marks[:i]
	}
	if st.HashState == nil {
		saveHash(st, sha256.New())
	}
}
