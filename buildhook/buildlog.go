package buildhook

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"kiln/storage"
)

// liveLog is the log of a running build: kept in memory for followers and
// copied to the store every flushInterval and when the build ends, within
// a bound (its start as written, its end in a ring added when it ends). It
// also carries the build's latest progress note (Records.NoteLater), which
// goes to the store with the log.
type liveLog struct {
	mu      sync.Mutex
	buf     []byte // the log's start, as followers see it
	head    int    // buf's bound, before the notice that it is full
	tail    logTail
	done    bool
	changed chan struct{} // closed and replaced on every write
	dirty   bool
	note    *Record // not yet stored

	// flushing is held while the log or the note is written to the store:
	// once CloseLog holds it, no older copy can land after the final one.
	flushing sync.Mutex
}

const flushInterval = time.Second

func newLiveLog(limit int) *liveLog {
	head, tail := logBound(limit)
	return &liveLog{head: head, tail: logTail{max: tail}, changed: make(chan struct{})}
}

func (l *liveLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	if l.done {
		return n, nil // its last copy is stored: a late write has nowhere to go
	}
	if l.tail.written == 0 {
		room := min(len(p), l.head-len(l.buf))
		l.buf = append(l.buf, p[:room]...)
		if p = p[room:]; len(p) > 0 {
			l.buf = append(l.buf, logFullNotice(l.head, l.tail.max)...)
		}
	}
	if len(p) > 0 {
		l.tail.Write(p)
	}
	l.dirty = true
	close(l.changed)
	l.changed = make(chan struct{})
	return n, nil
}

// end adds the kept end of a log that outgrew its start; l.mu is held.
func (l *liveLog) end() {
	if l.tail.written == 0 {
		return
	}
	kept, left := l.tail.end()
	if left > 0 {
		l.buf = append(l.buf, logLeftOutNotice(left)...)
	}
	l.buf = append(l.buf, kept...)
	l.tail = logTail{}
}

// snapshot returns the log from offset, whether the build ended, and a
// channel closed on the next write.
func (l *liveLog) snapshot(offset int) ([]byte, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset > len(l.buf) {
		offset = len(l.buf)
	}
	return append([]byte(nil), l.buf[offset:]...), l.done, l.changed
}

// OpenLog starts the live log of build id; close it with CloseLog.
func (rs *Records) OpenLog(ctx context.Context, id string) io.Writer {
	l := newLiveLog(rs.logLimit)
	rs.mu.Lock()
	rs.live[id] = l
	rs.mu.Unlock()
	go func() {
		t := time.NewTicker(flushInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if !rs.flush(context.WithoutCancel(ctx), id, l) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return l
}

// flush copies what changed in l to the store, and reports false once the
// build ended.
func (rs *Records) flush(ctx context.Context, id string, l *liveLog) bool {
	l.flushing.Lock()
	defer l.flushing.Unlock()
	l.mu.Lock()
	done, dirty, note := l.done, l.dirty, l.note
	content := append([]byte(nil), l.buf...)
	l.dirty, l.note = false, nil
	l.mu.Unlock()
	if done {
		return false
	}
	if dirty {
		rs.store.PutBuildLog(ctx, id, content)
	}
	if note != nil {
		rs.Note(ctx, note)
	}
	return true
}

// liveLog returns the live log of build id, nil when it is not running
// here.
func (rs *Records) liveLog(id string) *liveLog {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.live[id]
}

// CloseLog stores the whole log of build id, durably, and ends following.
func (rs *Records) CloseLog(ctx context.Context, id string) error {
	rs.mu.Lock()
	l := rs.live[id]
	delete(rs.live, id)
	rs.mu.Unlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	l.end()
	l.done = true
	content := append([]byte(nil), l.buf...)
	note := l.note
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	l.flushing.Lock()
	defer l.flushing.Unlock()
	if note != nil {
		// The build's final record follows; this keeps the store's copy
		// current until then.
		rs.Note(ctx, note)
	}
	return rs.store.FinishBuildLog(ctx, id, content)
}

// FollowLog writes the log of build id to w; with follow it keeps writing
// until the build ends or ctx is done.
func (rs *Records) FollowLog(ctx context.Context, id string, w io.Writer, follow bool) error {
	if !validBuildID(id) {
		return ErrNoBuild
	}
	l := rs.liveLog(id)
	if l == nil && follow {
		return rs.followStored(ctx, id, w)
	}
	if l == nil {
		b, err := rs.store.BuildLog(ctx, id)
		if err != nil {
			if !errors.Is(err, storage.ErrBuildUnknown) {
				return err
			}
			if _, err := rs.Get(ctx, id); err != nil {
				return err
			}
			return nil // queued: no log yet
		}
		_, err = w.Write(b)
		return err
	}
	offset := 0
	for {
		chunk, done, changed := l.snapshot(offset)
		if len(chunk) > 0 {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
			if f, ok := w.(interface{ Flush() }); ok {
				f.Flush()
			}
			offset += len(chunk)
		}
		if done || !follow {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// followStored follows the log of a build this process does not run: it
// is queued, or runs on another instance of a cluster, which copies its
// log to the store every flushInterval. The log is read from there as
// often until the record says the build ended, each time from where the
// last read ended (a log only grows: an instance that takes a build over
// runs it under a new id). The record is read before the log: its runner
// stores the whole log before it ends the record.
func (rs *Records) followStored(ctx context.Context, id string, w io.Writer) error {
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	var offset int64
	for {
		r, err := rs.Get(ctx, id)
		if err != nil {
			return err
		}
		b, err := rs.store.BuildLogFrom(ctx, id, offset)
		if err != nil && !errors.Is(err, storage.ErrBuildUnknown) {
			return err
		}
		if len(b) > 0 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			if f, ok := w.(interface{ Flush() }); ok {
				f.Flush()
			}
			offset += int64(len(b))
		}
		if r.Done() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
