package buildhook

import (
	"bytes"
	"fmt"

	"kiln/storage"
)

// defaultLogLimit bounds a build's log when the configuration does not:
// a build that prints without end (a RUN of `yes`) would otherwise grow
// kiln's memory, and the copy stored every flushInterval, without bound.
const defaultLogLimit = 4 << 20

// logBound is what a log keeps: its first limit bytes as they are written
// (followers see them live) and, of a longer log, its last limit/8 bytes,
// kept in a ring and added when the build ends (a failing build's error
// is at its end).
func logBound(limit int) (head, tail int) {
	if limit <= 0 {
		limit = defaultLogLimit
	}
	return limit, limit / 8
}

// logTail keeps the last max bytes written to it.
type logTail struct {
	max     int
	buf     []byte
	written int64 // all bytes ever written
}

func (t *logTail) Write(p []byte) {
	t.written += int64(len(p))
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max { // amortised: move the kept end down now and then
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
}

// end returns the kept end, from its first whole line when it has one,
// and how many bytes written to t it leaves out.
func (t *logTail) end() (kept []byte, left int64) {
	kept = t.buf[max(0, len(t.buf)-t.max):]
	if int64(len(kept)) < t.written {
		if i := bytes.IndexByte(kept, '\n'); i >= 0 && i < len(kept)-1 {
			kept = kept[i+1:]
		}
	}
	return kept, t.written - int64(len(kept))
}

// logFullNotice is written once, where the kept start of a log ends.
func logFullNotice(head, tail int) string {
	return fmt.Sprintf("\n[kiln: this log passed %s; the rest is left out until the build ends, when its last %s follow]\n", storage.FormatBytes(int64(head)), storage.FormatBytes(int64(tail)))
}

// logLeftOutNotice goes between the kept start and the kept end.
func logLeftOutNotice(left int64) string {
	return fmt.Sprintf("[kiln: %d bytes of this log left out; its last lines follow]\n", left)
}
