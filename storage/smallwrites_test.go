package storage

import (
	"bytes"
	"errors"
	"io"
	"testing"
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
