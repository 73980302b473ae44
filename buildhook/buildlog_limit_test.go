package buildhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"kiln/storage"
)

// A build that prints without end (a RUN of `yes`, a chatty test suite)
// must not grow kiln's memory or its stored log without bound: the log
// keeps its start and its last bytes, within the limit, and says how much
// it left out; a follower sees what the store ends up with.
func TestBuildLogIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const limit = 64 << 10
	store, rs, id, w := openLimitedLog(limit)

	followed := make(chan []byte)
	go func() {
		var b bytes.Buffer
		if err := rs.FollowLog(ctx, id, &b, true); err != nil {
			t.Error(err)
		}
		followed <- b.Bytes()
	}()

	const lines = 200_000 // about 3.5 MB
	for i := range lines {
		fmt.Fprintf(w, "line %d of a chatty build\n", i)
	}
	// Its start and a ring for its end, with append's slack: about the
	// limit, not the 5.9 MB written.
	if l := rs.liveLog(id); l.size() > 2*limit {
		t.Errorf("the running build's log holds %d bytes in memory; limit %d", l.size(), limit)
	}
	if err := rs.CloseLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	if store.finishedLogs.Load() != 1 {
		t.Errorf("the log's last copy was not stored durably")
	}
	stored, err := store.BuildLog(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) > limit+limit/8+1024 {
		t.Errorf("stored log is %d bytes; limit %d", len(stored), limit)
	}
	if !strings.HasPrefix(string(stored), "line 0 of a chatty build\n") {
		t.Errorf("stored log does not start with the build's first line: %.40q", stored)
	}
	if last := fmt.Sprintf("\nline %d of a chatty build\n", lines-1); !strings.HasSuffix(string(stored), last) {
		t.Errorf("stored log does not end with the build's last line: ...%q", stored[max(0, len(stored)-60):])
	}
	if !strings.Contains(string(stored), "bytes of this log left out") {
		t.Errorf("stored log does not say that bytes were left out")
	}
	// The kept tail starts at a line: no half line after the notice.
	_, after, _ := strings.Cut(string(stored), "bytes of this log left out")
	_, after, _ = strings.Cut(after, "\n")
	if !strings.HasPrefix(after, "line ") {
		t.Errorf("the kept end starts mid-line: %.40q", after)
	}
	if got := <-followed; !bytes.Equal(got, stored) {
		t.Errorf("a follower saw %d bytes, the store holds %d", len(got), len(stored))
	}
}

// openLimitedLog opens the log of a new build, bounded by limit, kept in
// memory.
func openLimitedLog(limit int) (*countingStore, *Records, string, io.Writer) {
	store := &countingStore{Store: storage.NewInMemory(storage.Options{})}
	rs := newRecords(store)
	rs.logLimit = limit
	id := newBuildID()
	return store, rs, id, rs.OpenLog(context.Background(), id)
}

// size is how many bytes l holds in memory.
func (l *liveLog) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return cap(l.buf) + cap(l.tail.buf)
}

// A log within the limit is kept whole, with no notice.
func TestBuildLogWithinLimitIsWhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, rs, id, w := openLimitedLog(64 << 10)
	want := strings.Repeat("x", 64<<10-1) + "\n"
	w.Write([]byte(want))
	if err := rs.CloseLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, err := store.BuildLog(ctx, id); err != nil || string(got) != want {
		t.Errorf("stored %d bytes (%v), want the %d written", len(got), err, len(want))
	}
}

// A builder may still write after its build's log closed (a stream that
// ends late): nothing is stored, and nothing breaks.
func TestBuildLogWriteAfterCloseIsDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, rs, id, w := openLimitedLog(64 << 10)
	w.Write(bytes.Repeat([]byte("x\n"), 50<<10))
	if err := rs.CloseLog(ctx, id); err != nil {
		t.Fatal(err)
	}
	stored, err := store.BuildLog(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write([]byte("late\n")); n != 5 || err != nil {
		t.Errorf("a late write: %d, %v", n, err)
	}
	if again, err := store.BuildLog(ctx, id); err != nil || !bytes.Equal(again, stored) {
		t.Errorf("the stored log changed after it closed (%v)", err)
	}
}
