package buildhook

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// hangingBuilder never returns on its own, not even when its context
// ends: to the records, the process running it died mid-build.
type hangingBuilder struct {
	entered chan string // the job ids it was given
	release chan struct{}
}

func (b *hangingBuilder) Name() string { return "native" }

func (b *hangingBuilder) Build(ctx context.Context, job *build.Job, log io.Writer) (digest.Digest, error) {
	b.entered <- job.ID
	<-b.release
	return "", context.Canceled
}

// The finding: a build that gets kiln OOM-killed was resumed at every
// start, so kiln died again within seconds, forever. A build that was
// running when kiln died twice is now marked failed, not run a third time.
func TestServiceStopsResumingAfterTwoCrashes(t *testing.T) {
	c := newChain(t)
	c.pushBase(t)
	c.waitIdle(t)
	// The context changes, so the resumed build has something to build.
	if err := os.WriteFile(filepath.Join(c.svc.Graph().Rule("app").Context, "changed.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Death 1: a record left running.
	first := &Record{ID: newBuildID(), Rule: "app", Reason: "push", Status: StatusRunning}
	if err := c.svc.Records().Save(t.Context(), first); err != nil {
		t.Fatal(err)
	}

	// The next start resumes it; kiln dies again while it runs.
	hang := &hangingBuilder{entered: make(chan string, 1), release: make(chan struct{})}
	svc2, err := NewService(ServiceOptions{Store: c.store, Rules: c.svc.Graph().Rules(), Registry: c.host, Hosts: []string{c.host},
		Builders: map[string]build.Builder{"native": hang}})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	if err := svc2.Start(ctx2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(hang.release); cancel2(); svc2.Wait() })
	second := recv(t, hang.entered, "the resumed build")
	if r, err := svc2.Records().Get(t.Context(), second); err != nil || r.Status != StatusRunning || r.Reason != "resume" {
		t.Fatalf("resumed build: %+v %v", r, err)
	}

	// Death 2: the third start must not run it again.
	again := &hangingBuilder{entered: make(chan string, 1), release: make(chan struct{})}
	svc3, err := NewService(ServiceOptions{Store: c.store, Rules: c.svc.Graph().Rules(), Registry: c.host, Hosts: []string{c.host},
		Builders: map[string]build.Builder{"native": again}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc3.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(again.release); svc3.Wait() })
	// Start queues what it resumes before it returns.
	if queued, running := svc3.queue.Counts(); queued+running != 0 {
		t.Errorf("the third start queued %d builds", queued+running)
	}
	r, err := svc3.Records().Get(t.Context(), second)
	if err != nil || r.Status != StatusFailed || !strings.Contains(r.Error, "kiln stopped twice while this build ran") {
		t.Errorf("twice interrupted build: %+v %v", r, err)
	}
	recs, err := svc3.Records().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if !r.Done() {
			t.Errorf("build %s is still %s", r.ID, r.Status)
		}
	}
}

// spoolTempDir points TMPDIR at a fresh directory and returns it.
func spoolTempDir(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return tmp
}

// The finding: kiln OOM-killed in a build left 13 GB of kiln-native-*
// spool files behind. A start removes the spools of processes that are
// gone (which ones: native.TestRemoveDeadSpools), and nothing else.
func TestServiceStartRemovesDeadSpools(t *testing.T) {
	tmp := spoolTempDir(t)
	dead := filepath.Join(tmp, "kiln-native-old") // an older kiln's: no lock at all
	if err := os.MkdirAll(dead, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "spool"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dead, long, long); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "not-kiln"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	newChain(t)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("after start, the dead spool is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "not-kiln")); err != nil {
		t.Errorf("start removed what is not a spool: %v", err)
	}
}
