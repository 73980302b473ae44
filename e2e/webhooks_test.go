package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWebhooks pushes to kiln with a webhook receiver configured: every
// push and delete reaches the receiver at least once, with a stable id,
// in order per repository. Then the receiver fails, more pushes pile up
// in the outbox, kiln is SIGKILLed and restarted, the receiver recovers:
// nothing is lost.
func TestWebhooks(t *testing.T) {
	needSetup(t)
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "webhook-secret"
	rec := newHookReceiver(t, secret)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	body := fmt.Sprintf("notifications:\n  min_backoff: 50ms\n  max_backoff: 400ms\n  endpoints:\n    - {name: e2e, url: %q, secret: %q, timeout: 2s}\n", rec.srv.URL, secret)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var addr string
	starts := 0
	launch := func() *kilnServer {
		t.Helper()
		starts++
		srv, err := launchKiln(bin, "hooks", dir, fmt.Sprintf("kiln-%d.log", starts), nil, addr, "--config", cfg, "--data", data)
		if err != nil {
			if srv != nil {
				srv.printTail(os.Stdout, 40)
			}
			t.Fatal(err)
		}
		addr = srv.env.Addr
		return srv
	}
	srv := launch()
	var want []hookExpect // what the clients got answers for, in order per repository

	// Phase 1: the receiver takes everything.
	want = append(want, pushTags(t, "http://"+addr, "phase1", 4, 20)...)
	want = append(want, deleteTag(t, "http://"+addr, "hooks/phase1/r0", "t4"))
	rec.waitFor(t, want, 60*time.Second)
	live := rec.latencies(0, -1)

	// Phase 2: the receiver fails; pushes are answered (their events are
	// in the outbox), then kiln dies with SIGKILL before delivering them.
	rec.failing.Store(true)
	phase2 := pushTags(t, "http://"+addr, "phase2", 4, 10)
	want = append(want, phase2...)
	rec.waitForAttempt(t, 30*time.Second) // kiln tried and was refused
	srv.kill()
	if got := rec.received(phase2); got != 0 {
		t.Fatalf("%d of phase 2's events were taken while the receiver failed", got)
	}
	rec.failing.Store(false)
	rec.mu.Lock()
	before := len(rec.latency)
	rec.mu.Unlock()
	srv = launch()
	rec.waitFor(t, want, 60*time.Second)
	if err := srv.stop(); err != nil {
		t.Error(err)
	}

	sent, dups, lost := rec.report(t, want)
	restarted := rec.latencies(before, -1)
	t.Logf("webhook figures: events sent %d (unique %d), duplicates %d, lost %d; delivery latency, receiver up: median %v p99 %v; "+
		"events held over the outage and SIGKILL: median %v p99 %v after their action",
		sent, sent-dups, dups, lost, live.median, live.p99, restarted.median, restarted.p99)
	if lost != 0 {
		t.Errorf("%d events lost", lost)
	}
}

// hookExpect is an action a client had an answer for.
type hookExpect struct {
	typ, repo, tag, digest string
}

type hookEvent struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	Data struct {
		Repo   string `json:"repository"`
		Tag    string `json:"tag"`
		Digest string `json:"digest"`
	} `json:"data"`
}

// hookReceiver is the webhook: it checks each request's signature and
// keeps each event's first arrival; failing answers 503 to everything.
type hookReceiver struct {
	srv      *httptest.Server
	failing  atomic.Bool
	attempts atomic.Int64 // refused while failing

	mu      sync.Mutex
	seen    map[string]int         // id -> deliveries
	byRepo  map[string][]hookEvent // first arrivals, in order
	latency []time.Duration        // first arrival - the event's time
	changed chan struct{}
}

func newHookReceiver(t *testing.T, secret string) *hookReceiver {
	r := &hookReceiver{seen: map[string]int{}, byRepo: map[string][]hookEvent{}, changed: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.failing.Load() {
			r.attempts.Add(1)
			select {
			case r.changed <- struct{}{}:
			default:
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		if req.Header.Get("X-Kiln-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("a delivery with a bad signature: %q", req.Header.Get("X-Kiln-Signature"))
		}
		var e hookEvent
		if err := json.Unmarshal(body, &e); err != nil || e.ID == "" {
			t.Errorf("an unreadable event %q: %v", body, err)
		}
		now := time.Now()
		r.mu.Lock()
		r.seen[e.ID]++
		if r.seen[e.ID] == 1 {
			r.byRepo[e.Data.Repo] = append(r.byRepo[e.Data.Repo], e)
			r.latency = append(r.latency, now.Sub(e.Time))
		}
		r.mu.Unlock()
		select {
		case r.changed <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (e hookEvent) matches(x hookExpect) bool {
	return e.Type == "dev.kiln."+x.typ && e.Data.Repo == x.repo && e.Data.Tag == x.tag && (x.digest == "" || e.Data.Digest == x.digest)
}

// received counts the events of want that arrived.
func (r *hookReceiver) received(want []hookExpect) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range want {
		if slices.ContainsFunc(r.byRepo[x.repo], func(e hookEvent) bool { return e.matches(x) }) {
			n++
		}
	}
	return n
}

// waitFor waits until every event of want arrived.
func (r *hookReceiver) waitFor(t *testing.T, want []hookExpect, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for r.received(want) < len(want) {
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("after %v the receiver has %d of %d events", timeout, r.received(want), len(want))
		}
	}
}

// waitForAttempt waits until kiln tried a delivery the receiver refused.
func (r *hookReceiver) waitForAttempt(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for r.attempts.Load() == 0 {
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("no delivery attempt within %v", timeout)
		}
	}
}

// report checks the order per repository and counts deliveries,
// duplicates and what never arrived.
func (r *hookReceiver) report(t *testing.T, want []hookExpect) (sent, dups, lost int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.seen {
		sent += n
		dups += n - 1
	}
	perRepo := map[string][]hookExpect{}
	for _, x := range want {
		perRepo[x.repo] = append(perRepo[x.repo], x)
	}
	for repo, xs := range perRepo {
		got := r.byRepo[repo]
		i := 0 // the events of xs must appear in got in xs's order
		for _, e := range got {
			if i < len(xs) && e.matches(xs[i]) {
				i++
			}
		}
		if i < len(xs) {
			lost += len(xs) - i
			t.Errorf("%s: events out of order or missing from %v on: got %d of %d in order", repo, xs[i], i, len(xs))
		}
	}
	return sent, dups, lost
}

type hookLatency struct{ median, p99 time.Duration }

// latencies of the first arrivals from, to (-1: all so far).
func (r *hookReceiver) latencies(from, to int) hookLatency {
	r.mu.Lock()
	if to < 0 {
		to = len(r.latency)
	}
	l := slices.Clone(r.latency[from:to])
	r.mu.Unlock()
	if len(l) == 0 {
		return hookLatency{}
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return hookLatency{median: l[len(l)/2], p99: l[min(len(l)-1, len(l)*99/100)]}
}

// pushTags pushes tags t0..t<n-1> to repos repos of prefix, one repository
// per goroutine, each tag a new manifest; it returns the push events due.
func pushTags(t *testing.T, base, prefix string, repos, n int) []hookExpect {
	t.Helper()
	out := make([][]hookExpect, repos)
	var wg sync.WaitGroup
	for i := range repos {
		wg.Go(func() {
			repo := fmt.Sprintf("hooks/%s/r%d", prefix, i)
			for j := range n {
				d, err := pushOneImage(base, repo, fmt.Sprintf("t%d", j))
				if err != nil {
					t.Error(err)
					return
				}
				out[i] = append(out[i], hookExpect{"push", repo, fmt.Sprintf("t%d", j), d})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return slices.Concat(out...)
}

// pushOneImage pushes a one-layer image unique to repo:tag.
func pushOneImage(base, repo, tag string) (string, error) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("layer of " + repo + ":" + tag + " " + time.Now().String())
	for _, b := range [][]byte{config, layer} {
		resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/?digest="+sha256Digest(b), "application/octet-stream", bytes.NewReader(b))
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("blob upload to %s: %s", repo, resp.Status)
		}
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		sha256Digest(config), len(config), sha256Digest(layer), len(layer))
	req, _ := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, strings.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("manifest PUT %s:%s: %s", repo, tag, resp.Status)
	}
	return sha256Digest([]byte(m)), nil
}

func deleteTag(t *testing.T, base, repo, tag string) hookExpect {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, base+"/v2/"+repo+"/manifests/"+tag, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s:%s: %s", repo, tag, resp.Status)
	}
	return hookExpect{"delete", repo, tag, ""}
}
