package buildhook

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"kiln/storage"
)

// logReadCounter counts the bytes of build logs read from the store.
type logReadCounter struct {
	*storage.Store
	read atomic.Int64
}

func (c *logReadCounter) BuildLog(ctx context.Context, id string) ([]byte, error) {
	b, err := c.Store.BuildLog(ctx, id)
	c.read.Add(int64(len(b)))
	return b, err
}

func (c *logReadCounter) BuildLogFrom(ctx context.Context, id string, offset int64) ([]byte, error) {
	b, err := c.Store.BuildLogFrom(ctx, id, offset)
	c.read.Add(int64(len(b)))
	return b, err
}

// Following a build another instance runs reads each stored byte of its
// log about once, not the whole log every flushInterval: a long build's
// followers would otherwise read its log again and again.
func TestFollowingAStoredLogReadsOnlyWhatIsNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		store := &logReadCounter{Store: storage.NewInMemory(storage.Options{})}
		runner, follower := newRecords(store), newRecords(store)
		r := &Record{ID: newBuildID(), Rule: "app", Status: StatusRunning}
		if err := runner.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		w := runner.OpenLog(ctx, r.ID)
		followed := make(chan string)
		go func() {
			var b bytes.Buffer
			if err := follower.FollowLog(ctx, r.ID, &b, true); err != nil {
				t.Error(err)
			}
			followed <- b.String()
		}()
		var want strings.Builder
		for i := range 30 {
			line := strings.Repeat(string(rune('a'+i%26)), 9999) + "\n"
			w.Write([]byte(line))
			want.WriteString(line)
			time.Sleep(flushInterval)
			synctest.Wait()
		}
		if err := runner.CloseLog(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		r.Status = StatusSucceeded
		if err := runner.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got := <-followed; got != want.String() {
			t.Fatalf("the follower got %d bytes, want the %d written", len(got), want.Len())
		}
		n := store.read.Load()
		if n > 3*int64(want.Len()) {
			t.Errorf("following read %d bytes of log from the store for a %d-byte log", n, want.Len())
		}
		t.Logf("following a %d-byte log read %d bytes from the store", want.Len(), n)
	})
}
