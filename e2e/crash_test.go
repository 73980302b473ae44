package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if moduleRoot == "" {
		t.Fatalf("module root unknown: %v", registryErr)
	}
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
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
		time.Sleep(delay)
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

// ---------------------------------------------------------------- clients

type crashHTTP struct {
	base     string
	client   *http.Client
	answered func() // if set, called after each complete answer
}

// newCrashHTTP returns a client with its own connections, so none survives
// from a killed kiln into the next one.
func newCrashHTTP(base string) *crashHTTP {
	return &crashHTTP{base: base, client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
}

func (h *crashHTTP) do(method, url string, hdr map[string]string, body []byte) (*http.Response, []byte, error) {
	if strings.HasPrefix(url, "/") {
		url = h.base + url
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if h.answered != nil {
		h.answered()
	}
	return resp, b, nil
}

type crashBlob struct {
	repo    string
	digest  string
	content []byte
}

type crashManifest struct {
	repo, tag, digest string
	body              []byte
	blobs             []crashBlob
}

// crashSession is a chunked upload cut off by the crash.
type crashSession struct {
	repo, location string
	content        []byte
	digest         string
	acked          int64 // bytes the last 202 acknowledged
	putSent        bool  // the final PUT was under way
}

type crashClient struct {
	repo string
	rng  *rand.Rand
	seq  int

	mono, chunked, resumed []crashBlob
	manifests              []*crashManifest // acknowledged, not deleted
	deleted                []*crashManifest // acknowledged deletes
	putsAcked              int              // acknowledged manifest PUTs
	sessions               []*crashSession  // cut off, not yet checked
	cut                    int              // requests cut off by the crash
	started                func()           // called on each answered request
}

func (c *crashClient) content(min, max int) ([]byte, string) {
	b := make([]byte, min+c.rng.IntN(max-min))
	for i := range b {
		b[i] = byte(c.rng.UintN(256))
	}
	return b, sha256Digest(b)
}

// run pushes until a request fails (kiln was killed).
func (c *crashClient) run(t *testing.T, h *crashHTTP, round int) {
	h.answered = c.started
	for {
		c.seq++
		// Every other iteration deletes a manifest pushed before (in
		// this round or an earlier one), so deletes are cut off too.
		if len(c.manifests) > 0 && c.rng.IntN(2) == 0 {
			if !c.deleteManifest(t, h) {
				return
			}
		}
		cfg, ok := c.pushMonolithic(t, h)
		if !ok {
			return
		}
		layer, ok := c.pushChunked(t, h)
		if !ok {
			return
		}
		if !c.putManifest(t, h, round, cfg, layer) {
			return
		}
	}
}

func (c *crashClient) unexpected(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Errorf("%s %s: unexpected %s: %s", c.repo, what, resp.Status, tail(string(body), 5))
}

func (c *crashClient) pushMonolithic(t *testing.T, h *crashHTTP) (crashBlob, bool) {
	b, d := c.content(1<<10, 32<<10)
	resp, body, err := h.do(http.MethodPost, "/v2/"+c.repo+"/blobs/uploads/?digest="+d, map[string]string{"Content-Type": "application/octet-stream"}, b)
	if err != nil {
		c.cut++
		return crashBlob{}, false
	}
	if resp.StatusCode != http.StatusCreated {
		c.unexpected(t, "monolithic POST", resp, body)
		return crashBlob{}, false
	}
	blob := crashBlob{c.repo, d, b}
	c.mono = append(c.mono, blob)
	return blob, true
}

func (c *crashClient) pushChunked(t *testing.T, h *crashHTTP) (crashBlob, bool) {
	b, d := c.content(48<<10, 256<<10)
	resp, body, err := h.do(http.MethodPost, "/v2/"+c.repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		c.cut++
		return crashBlob{}, false
	}
	if resp.StatusCode != http.StatusAccepted {
		c.unexpected(t, "POST", resp, body)
		return crashBlob{}, false
	}
	s := &crashSession{repo: c.repo, location: resp.Header.Get("Location"), content: b, digest: d}
	chunks := 3 + c.rng.IntN(3)
	size := int64(len(b)) / int64(chunks)
	for i := range chunks - 1 {
		from, to := int64(i)*size, int64(i+1)*size
		resp, body, err := h.do(http.MethodPatch, s.location, map[string]string{
			"Content-Type":  "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", from, to-1),
		}, b[from:to])
		if err != nil {
			c.cut++
			c.sessions = append(c.sessions, s)
			return crashBlob{}, false
		}
		if resp.StatusCode != http.StatusAccepted {
			c.unexpected(t, "PATCH", resp, body)
			return crashBlob{}, false
		}
		s.location = resp.Header.Get("Location")
		if s.acked = rangeEnd(resp.Header.Get("Range")); s.acked != to {
			t.Errorf("%s PATCH %d-%d: Range %q", c.repo, from, to-1, resp.Header.Get("Range"))
		}
	}
	last := int64(chunks-1) * size
	s.putSent = true
	resp, body, err = h.do(http.MethodPut, withQuery(s.location, "digest="+d), map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", last, len(b)-1),
	}, b[last:])
	if err != nil {
		c.cut++
		c.sessions = append(c.sessions, s)
		return crashBlob{}, false
	}
	if resp.StatusCode != http.StatusCreated {
		c.unexpected(t, "PUT", resp, body)
		return crashBlob{}, false
	}
	blob := crashBlob{c.repo, d, b}
	c.chunked = append(c.chunked, blob)
	return blob, true
}

func (c *crashClient) putManifest(t *testing.T, h *crashHTTP, round int, cfg, layer crashBlob) bool {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.digest, "size": len(cfg.content)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.digest, "size": len(layer.content)}},
		"annotations":   map[string]string{"seq": strconv.Itoa(c.seq), "repo": c.repo},
	}
	body, _ := json.Marshal(m)
	tag := fmt.Sprintf("r%d-%d", round, c.seq)
	resp, rb, err := h.do(http.MethodPut, "/v2/"+c.repo+"/manifests/"+tag, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body)
	if err != nil {
		c.cut++
		return false
	}
	if resp.StatusCode != http.StatusCreated {
		c.unexpected(t, "manifest PUT", resp, rb)
		return false
	}
	d := sha256Digest(body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		t.Errorf("%s manifest PUT: Docker-Content-Digest %s, want %s", c.repo, got, d)
	}
	c.putsAcked++
	c.manifests = append(c.manifests, &crashManifest{repo: c.repo, tag: tag, digest: d, body: body, blobs: []crashBlob{cfg, layer}})
	return true
}

func (c *crashClient) deleteManifest(t *testing.T, h *crashHTTP) bool {
	i := c.rng.IntN(len(c.manifests))
	m := c.manifests[i]
	// Until answered, the delete may or may not happen: not checked.
	c.manifests = append(c.manifests[:i], c.manifests[i+1:]...)
	resp, body, err := h.do(http.MethodDelete, "/v2/"+c.repo+"/manifests/"+m.digest, nil, nil)
	if err != nil {
		c.cut++
		return false
	}
	if resp.StatusCode != http.StatusAccepted {
		c.unexpected(t, "manifest DELETE", resp, body)
		return false
	}
	c.deleted = append(c.deleted, m)
	return true
}

func withQuery(loc, q string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + q
	}
	return loc + "?" + q
}

// rangeEnd returns the size a Range header "0-N" stands for.
func rangeEnd(r string) int64 {
	_, end, ok := strings.Cut(r, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(end, 10, 64)
	if err != nil {
		return -1
	}
	if n == 0 {
		return 0 // "0-0" is also an empty session
	}
	return n + 1
}

// ---------------------------------------------------------------- checks

type crashState struct {
	clients                          []*crashClient
	resumedSessions, unknownSessions int
	losses                           int
}

type crashTotals struct{ mono, chunked, resumed, manifests, deletes, cut int }

func (s *crashState) totals() crashTotals {
	var t crashTotals
	for _, c := range s.clients {
		t.mono += len(c.mono)
		t.chunked += len(c.chunked)
		t.resumed += len(c.resumed)
		t.manifests += c.putsAcked
		t.deletes += len(c.deleted)
		t.cut += c.cut
	}
	return t
}

func (s *crashState) pendingSessions() []*crashSession {
	var out []*crashSession
	for _, c := range s.clients {
		out = append(out, c.sessions...)
	}
	return out
}

func (s *crashState) lost(t *testing.T, format string, args ...any) {
	t.Helper()
	s.losses++
	t.Errorf("LOST: "+format, args...)
}

// verify checks, on the restarted kiln, everything acknowledged so far.
func (s *crashState) verify(t *testing.T, h *crashHTTP, round int) {
	t.Helper()
	get := func(url string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		resp, b, err := h.do(http.MethodGet, url, hdr, nil)
		if err != nil {
			t.Fatalf("GET %s after restart: %v", url, err)
		}
		return resp, b
	}
	checkBlob := func(b crashBlob, what string) {
		t.Helper()
		resp, got := get("/v2/"+b.repo+"/blobs/"+b.digest, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, b.content) {
			s.lost(t, "%s blob %s/%s: %s, %d bytes (want %d), hashes to %s", what, b.repo, b.digest, resp.Status, len(got), len(b.content), sha256Digest(got))
		}
	}
	accept := map[string]string{"Accept": acceptManifests}
	checked := 0
	for _, c := range s.clients {
		for _, b := range c.mono {
			checkBlob(b, "monolithic")
		}
		for _, b := range c.chunked {
			checkBlob(b, "chunked")
		}
		for _, b := range c.resumed {
			checkBlob(b, "resumed")
		}
		for _, m := range c.manifests {
			for _, ref := range []string{m.tag, m.digest} {
				resp, body := get("/v2/"+m.repo+"/manifests/"+ref, accept)
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, m.body) {
					s.lost(t, "manifest %s:%s: %s", m.repo, ref, resp.Status)
				}
			}
			for _, b := range m.blobs {
				checkBlob(b, "manifest's")
			}
		}
		for _, m := range c.deleted {
			for _, ref := range []string{m.tag, m.digest} {
				if resp, _ := get("/v2/"+m.repo+"/manifests/"+ref, accept); resp.StatusCode != http.StatusNotFound {
					s.lost(t, "deleted manifest %s:%s came back: %s", m.repo, ref, resp.Status)
				}
			}
		}
		checked += len(c.mono) + len(c.chunked) + len(c.resumed) + len(c.manifests) + len(c.deleted)

		// Nothing half-written is visible: every tag listed resolves to a
		// manifest whose blobs are whole, acknowledged or not.
		resp, body := get("/v2/"+c.repo+"/tags/list?n=10000", nil)
		if resp.StatusCode == http.StatusOK {
			var tl struct{ Tags []string }
			if err := json.Unmarshal(body, &tl); err != nil {
				t.Fatalf("tags/list: %v", err)
			}
			for _, tag := range tl.Tags {
				resp, mb := get("/v2/"+c.repo+"/manifests/"+tag, accept)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != sha256Digest(mb) {
					t.Errorf("listed tag %s:%s: %s", c.repo, tag, resp.Status)
					continue
				}
				var md manifestDoc
				if err := json.Unmarshal(mb, &md); err != nil || md.Config == nil {
					t.Errorf("listed tag %s:%s: manifest %v", c.repo, tag, err)
					continue
				}
				for _, d := range append([]descriptor{*md.Config}, md.Layers...) {
					resp, b := get("/v2/"+c.repo+"/blobs/"+d.Digest, nil)
					if resp.StatusCode != http.StatusOK || sha256Digest(b) != d.Digest || int64(len(b)) != d.Size {
						t.Errorf("listed tag %s:%s: blob %s: %s, %d bytes", c.repo, tag, d.Digest, resp.Status, len(b))
					}
				}
			}
		} else if resp.StatusCode != http.StatusNotFound {
			t.Errorf("tags/list %s: %s", c.repo, resp.Status)
		}

		// Interrupted sessions resume from where they stand, or are unknown.
		for _, ss := range c.sessions {
			s.checkSession(t, h, c, ss)
		}
		c.sessions = nil
	}
	t.Logf("round %d: after restart %d acknowledged operations verified; sessions so far: %d resumed, %d unknown; losses so far: %d",
		round, checked, s.resumedSessions, s.unknownSessions, s.losses)
}

func (s *crashState) checkSession(t *testing.T, h *crashHTTP, c *crashClient, ss *crashSession) {
	t.Helper()
	resp, body, err := h.do(http.MethodGet, ss.location, nil, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", ss.location, err)
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		if !strings.Contains(string(body), "BLOB_UPLOAD_UNKNOWN") {
			t.Errorf("session %s: 404 without BLOB_UPLOAD_UNKNOWN: %s", ss.location, body)
		}
		// Only the final PUT may end a session; one whose POST was
		// answered and that never saw a PUT must still be there.
		if !ss.putSent {
			s.lost(t, "session %s: unknown after a crash, though no PUT was sent (%d bytes acknowledged)", ss.location, ss.acked)
		}
		s.unknownSessions++
		return
	case http.StatusNoContent:
	default:
		t.Errorf("session %s: status %s: %s", ss.location, resp.Status, tail(string(body), 5))
		return
	}
	n := rangeEnd(resp.Header.Get("Range"))
	if n < ss.acked || n > int64(len(ss.content)) {
		s.lost(t, "session %s: Range %q, but %d bytes were acknowledged (of %d)", ss.location, resp.Header.Get("Range"), ss.acked, len(ss.content))
		return
	}
	loc := resp.Header.Get("Location")
	if n < int64(len(ss.content)) {
		resp, body, err = h.do(http.MethodPatch, loc, map[string]string{
			"Content-Type":  "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", n, len(ss.content)-1),
		}, ss.content[n:])
		if err != nil {
			t.Fatalf("PATCH %s: %v", loc, err)
		}
		if resp.StatusCode != http.StatusAccepted {
			s.lost(t, "resuming session %s at %d: %s: %s", loc, n, resp.Status, tail(string(body), 5))
			return
		}
		loc = resp.Header.Get("Location")
	}
	resp, body, err = h.do(http.MethodPut, withQuery(loc, "digest="+ss.digest), nil, nil)
	if err != nil {
		t.Fatalf("PUT %s: %v", loc, err)
	}
	if resp.StatusCode != http.StatusCreated {
		s.lost(t, "finishing resumed session %s: %s: %s", loc, resp.Status, tail(string(body), 5))
		return
	}
	b := crashBlob{ss.repo, ss.digest, ss.content}
	c.resumed = append(c.resumed, b)
	s.resumedSessions++
	resp, got, err := h.do(http.MethodGet, "/v2/"+b.repo+"/blobs/"+b.digest, nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, b.content) {
		s.lost(t, "resumed blob %s: %v", b.digest, err)
	}
}
