package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrash SIGKILLs kiln in the middle of concurrent pushes (monolithic and
// chunked), manifest PUTs and deletes, restarts it on the same data and
// address, and checks that everything acknowledged is still there and
// verifies, every acknowledged delete stays deleted, nothing half-written is
// visible, and interrupted upload sessions either resume or answer
// BLOB_UPLOAD_UNKNOWN. `kiln fsck` must find no problem after every crash
// and at the end.
func TestCrash(t *testing.T) {
	needSetup(t)
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// The first start takes a free port; restarts come back on it, since the
	// clients keep that address across rounds.
	var addr string
	starts := 0
	launch := func() *kilnServer {
		t.Helper()
		starts++
		srv, err := launchKiln(bin, "crash", dir, fmt.Sprintf("kiln-%d.log", starts), nil, addr, "--data", data)
		if err != nil {
			if srv != nil {
				srv.printTail(crashLogWriter{t}, 40)
			}
			t.Fatal(err)
		}
		if addr == "" {
			addr = srv.env.Addr
		}
		return srv
	}

	const rounds, clients = 8, 6
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	st := &crashState{}
	for c := range clients {
		st.clients = append(st.clients, &crashClient{repo: fmt.Sprintf("crash/c%d", c), rng: rand.New(rand.NewPCG(seed, uint64(c)+2))})
	}

	srv := launch()
	for round := 1; round <= rounds; round++ {
		base := "http://" + addr
		var wg sync.WaitGroup
		before := st.totals()
		// The round starts with its first answered request (a restarted
		// kiln under the race detector is slow at first); the kill comes
		// 10-300 ms later.
		started := make(chan struct{})
		var once sync.Once
		for _, c := range st.clients {
			c.started = func() { once.Do(func() { close(started) }) }
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.run(t, newCrashHTTP(base), round)
			}()
		}
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Errorf("round %d: no request answered within 10s", round)
		}
		delay := time.Duration(10+rng.IntN(291)) * time.Millisecond
		time.Sleep(delay) // a random moment to kill at, not a wait for anything
		srv.kill()
		wg.Wait()
		if b, err := os.ReadFile(srv.stderr); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("round %d: the race detector reported a DATA RACE in kiln (see %s)", round, srv.stderr)
		}
		after := st.totals()
		t.Logf("round %d: SIGKILL after %s; acknowledged this round: %d monolithic blobs, %d chunked blobs, %d manifests, %d deletes; %d sessions interrupted, %d other requests cut off",
			round, delay, after.mono-before.mono, after.chunked-before.chunked, after.manifests-before.manifests, after.deletes-before.deletes,
			len(st.pendingSessions()), after.cut-before.cut)

		crashFsck(t, bin, dir, data, fmt.Sprintf("after the crash of round %d", round))

		srv = launch()
		st.verify(t, newCrashHTTP(base), round)
	}
	if err := srv.stop(); err != nil {
		t.Error(err)
	}
	crashFsck(t, bin, dir, data, "at the end")
	tot := st.totals()
	t.Logf("total over %d rounds: %d acknowledged operations (%d monolithic blobs, %d chunked blobs, %d resumed blobs, %d manifests, %d deletes); sessions after a crash: %d resumed, %d unknown; losses: %d",
		rounds, tot.mono+tot.chunked+tot.resumed+tot.manifests+tot.deletes, tot.mono, tot.chunked, tot.resumed, tot.manifests, tot.deletes, st.resumedSessions, st.unknownSessions, st.losses)
	if st.losses != 0 {
		t.Errorf("%d acknowledged operations lost", st.losses)
	}
}

type crashLogWriter struct{ t *testing.T }

func (w crashLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// crashFsck runs `kiln fsck` on the stopped data directory and fails the test
// unless it exits 0 reporting no problem.
func crashFsck(t *testing.T, bin, dir, data, when string) {
	t.Helper()
	r := runCmd(t, cmdOpts{Dir: dir, Timeout: 2 * time.Minute, Quiet: true}, bin, "fsck", "--quiet", "--data", data)
	summary := lastLineWithPrefix(r.Stdout, "checked ") + "; " + lastLineWithPrefix(r.Stdout, "")
	t.Logf("fsck %s: %s", when, summary)
	if r.Err != nil || !strings.Contains(r.Stdout, "\n0 problems") {
		t.Errorf("kiln fsck %s: %v\n%s", when, r.Err, tail(r.Stdout, 40))
	}
}
