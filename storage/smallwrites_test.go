package storage

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// pieces records each write it is given and takes at most limit bytes in
// all, failing after.
type pieces struct {
	sizes []int
	buf   bytes.Buffer
	limit int
}

var errFull = errors.New("full")

func (p *pieces) Write(b []byte) (int, error) {
	p.sizes = append(p.sizes, len(b))
	if room := p.limit - p.buf.Len(); len(b) > room {
		p.buf.Write(b[:room])
		return room, errFull
	}
	return p.buf.Write(b)
}

func TestSmallWritesSplitsLargeWrites(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (3*pageCacheWrite+100)/16)
	p := &pieces{limit: len(data)}
	n, err := smallWrites{p}.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	if !bytes.Equal(p.buf.Bytes(), data) {
		t.Fatal("the bytes written differ from the bytes given")
	}
	want := []int{pageCacheWrite, pageCacheWrite, pageCacheWrite, len(data) - 3*pageCacheWrite}
	if len(p.sizes) != len(want) {
		t.Fatalf("writes of %v; want %v", p.sizes, want)
	}
	for i := range want {
		if p.sizes[i] != want[i] {
			t.Fatalf("writes of %v; want %v", p.sizes, want)
		}
	}
}

func TestSmallWritesCountsBytesBeforeAnError(t *testing.T) {
	data := make([]byte, 2*pageCacheWrite)
	p := &pieces{limit: pageCacheWrite + 10}
	n, err := smallWrites{p}.Write(data)
	if !errors.Is(err, errFull) || n != pageCacheWrite+10 {
		t.Fatalf("Write = %d, %v; want %d, %v", n, err, pageCacheWrite+10, errFull)
	}
}

// stuck accepts nothing and reports no error, against io.Writer's rules.
type stuck struct{}

func (stuck) Write([]byte) (int, error) { return 0, nil }

func TestSmallWritesStopsOnAWriterThatTakesNothing(t *testing.T) {
	n, err := smallWrites{stuck{}}.Write([]byte("x"))
	if n != 0 || !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("Write = %d, %v; want 0, %v", n, err, io.ErrShortWrite)
	}
}

// ticking is a clock that moves on by step at every reading.
type ticking struct {
	t    time.Time
	step time.Duration
}

func (c *ticking) now() time.Time {
	c.t = c.t.Add(c.step)
	return c.t
}

func TestPageCacheWritesStayLargeWhileQuick(t *testing.T) {
	p := &pieces{limit: 1 << 30}
	clock := &ticking{step: 100 * time.Microsecond} // 1 MiB in 0.1 ms: 10 GB/s
	w := &pageCacheWrites{w: p, now: clock.now}
	buf := make([]byte, 1<<20)
	for range 3 {
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.sizes) != 3 || p.sizes[0] != 1<<20 {
		t.Fatalf("writes of %v; want 3 of 1 MiB", p.sizes)
	}
}

func TestPageCacheWritesGoSmallAfterASlowOne(t *testing.T) {
	p := &pieces{limit: 1 << 30}
	clock := &ticking{step: 10 * time.Millisecond} // 1 MiB in 10 ms: 100 MB/s
	w := &pageCacheWrites{w: p, now: clock.now}
	buf := make([]byte, 1<<20)
	for range 2 {
		if n, err := w.Write(buf); err != nil || n != len(buf) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if want := 1 + (1<<20)/pageCacheWrite; len(p.sizes) != want || p.sizes[0] != 1<<20 || p.sizes[1] != pageCacheWrite {
		t.Fatalf("writes of %v; want one of 1 MiB, then %d of %d", p.sizes, want-1, pageCacheWrite)
	}
	if p.buf.Len() != 2<<20 {
		t.Fatalf("%d bytes written; want %d", p.buf.Len(), 2<<20)
	}
}

func TestPageCacheWritesStartSmallAfterAnotherUploadWasSlow(t *testing.T) {
	m := new(slowMemory)
	clock := &ticking{t: time.Now(), step: 10 * time.Millisecond}
	first := &pageCacheWrites{w: &pieces{limit: 1 << 30}, memory: m, now: clock.now}
	if _, err := first.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	p := &pieces{limit: 1 << 30}
	if _, err := newPageCacheWrites(p, m).Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if len(p.sizes) != (1<<20)/pageCacheWrite {
		t.Fatalf("the next upload wrote %v; want pieces of %d", p.sizes, pageCacheWrite)
	}
	if m.active(clock.t.Add(slowMemoryFor)) {
		t.Fatalf("still writing small %v after the slow write", slowMemoryFor)
	}
}

// Uploads already under way go small too once another saw a slow write:
// under a backlog each of 32 concurrent pushes would otherwise pay for
// one slow large write of its own.
func TestPageCacheWritesInFlightGoSmallAfterAnotherUploadWasSlow(t *testing.T) {
	m := new(slowMemory)
	quick := &ticking{t: time.Now(), step: 100 * time.Microsecond}
	p := &pieces{limit: 1 << 30}
	inFlight := &pageCacheWrites{w: p, memory: m, now: quick.now}
	if _, err := inFlight.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	slow := &ticking{t: quick.t, step: 10 * time.Millisecond}
	other := &pageCacheWrites{w: &pieces{limit: 1 << 30}, memory: m, now: slow.now}
	if _, err := other.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	quick.t = slow.t
	if _, err := inFlight.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if want := 1 + (1<<20)/pageCacheWrite; len(p.sizes) != want || p.sizes[1] != pageCacheWrite {
		t.Fatalf("the upload under way wrote %v after another's slow write; want one of 1 MiB, then pieces of %d", p.sizes, pageCacheWrite)
	}
}
