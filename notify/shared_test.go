package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiln/cluster"
	"kiln/storage"
)

// receipt is one request a hook got: from which instance, which event
// (by tag), and whether the hook took it.
type receipt struct {
	instance, tag, typ string
	ok                 bool
	at                 time.Time
}

// hook is a webhook endpoint on loopback. decide, when set, answers each
// request: true takes it (200), false refuses it (503).
type hook struct {
	*httptest.Server
	got    chan receipt
	mu     sync.Mutex
	decide func(r *http.Request, rc receipt) bool
}

func newHook(t *testing.T) *hook {
	h := &hook{got: make(chan receipt, 1000)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ce struct{ Data Event }
		json.Unmarshal(body, &ce)
		rc := receipt{instance: r.Header.Get("X-Test-Instance"), tag: ce.Data.Tag, typ: ce.Data.Type, ok: true, at: time.Now()}
		h.mu.Lock()
		decide := h.decide
		h.mu.Unlock()
		if decide != nil {
			rc.ok = decide(r, rc)
		}
		h.got <- rc
		if !rc.ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// until returns what h got up to and with the first event tagged tag it
// took.
func (h *hook) until(t *testing.T, tag string) []receipt {
	t.Helper()
	timeout := time.After(time.Minute)
	var got []receipt
	for {
		select {
		case rc := <-h.got:
			got = append(got, rc)
			if rc.ok && rc.tag == tag {
				return got
			}
		case <-timeout:
			t.Fatalf("no event %q within a minute; got %v", tag, got)
		}
	}
}

// tagged marks each request with the instance that sent it.
type tagged string

func (tg tagged) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-Instance", string(tg))
	return http.DefaultTransport.RoundTrip(r)
}

// instance is one kiln's Notifier on the shared database at dsn, named
// name; stop ends its delivery (as a stop or a crash would).
type instance struct {
	*Notifier
	stop func()
}

func startInstance(t *testing.T, dsn, name string, endpoints ...Endpoint) *instance {
	t.Helper()
	return startOnStore(t, dsn, name, nil, endpoints...)
}

// startOnStore starts an instance whose store's outbox is outbox.
func startOnStore(t *testing.T, dsn, name string, outbox Outbox, endpoints ...Endpoint) *instance {
	t.Helper()
	db := openDB(t, dsn)
	n, err := NewShared(t.Context(), Cluster{DB: db, Lead: cluster.LeadOptions{Interval: 100 * time.Millisecond, Holder: name}}, outbox,
		endpoints, Options{Client: &http.Client{Transport: tagged(name)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return &instance{Notifier: n, stop: sync.OnceFunc(stop)}
}

func hookEndpoint(url string) Endpoint {
	return Endpoint{Name: "hook", URL: url, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

// tags lists the tags of what the hook took, in order.
func tags(got []receipt) []string {
	var out []string
	for _, rc := range got {
		if rc.ok {
			out = append(out, rc.tag)
		}
	}
	return out
}

func wantTags(n int) []string {
	var want []string
	for i := range n {
		want = append(want, strconv.Itoa(i))
	}
	return append(want, "end")
}

// publishAlternately publishes events tagged 0..n-1 from the instances in
// turn, then one tagged "end": the hook gets anything sent twice before it.
func publishAlternately(t *testing.T, n int, from ...*instance) {
	t.Helper()
	for i := range n {
		if err := from[i%len(from)].Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := from[0].Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: "end"}); err != nil {
		t.Fatal(err)
	}
}

// eventually waits up to a minute for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within a minute: %s", what)
		}
		<-tick.C
	}
}

// Two instances on one database publish in turn to one endpoint: it gets
// every event once, in publish order, whichever instance delivers.
func TestSharedOutboxDeliversOnceInOrder(t *testing.T) {
	dsn := newDatabase(t)
	h := newHook(t)
	a := startInstance(t, dsn, "a", hookEndpoint(h.URL))
	b := startInstance(t, dsn, "b", hookEndpoint(h.URL))
	const events = 40
	publishAlternately(t, events, a, b)
	got := h.until(t, "end")
	if want := wantTags(events); !slices.Equal(tags(got), want) {
		t.Fatalf("the hook took %v, want %v", tags(got), want)
	}
	if len(got) != events+1 {
		t.Errorf("%d requests for %d events", len(got), events+1)
	}
	eventually(t, "the delivered events deleted", func() bool { return a.Pending() == 0 })
}

// The leader's delivery ends while a request is in flight: the other
// instance takes over from the cursor; the event in flight is sent again
// (at least once), none is lost, and the order holds.
func TestSharedOutboxTakeover(t *testing.T) {
	dsn := newDatabase(t)
	h := newHook(t)
	a := startInstance(t, dsn, "a", hookEndpoint(h.URL))
	b := startInstance(t, dsn, "b", hookEndpoint(h.URL))
	instances := map[string]*instance{"a": a, "b": b}
	var cut atomic.Bool
	h.mu.Lock()
	h.decide = func(r *http.Request, rc receipt) bool {
		if rc.tag != "10" || !cut.CompareAndSwap(false, true) {
			return true
		}
		go instances[rc.instance].stop()
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
		return false
	}
	h.mu.Unlock()
	const events = 30
	publishAlternately(t, events, a, b)
	got := h.until(t, "end")
	if want := wantTags(events); !slices.Equal(tags(got), want) {
		t.Fatalf("the hook took %v, want %v", tags(got), want)
	}
	i := slices.IndexFunc(got, func(rc receipt) bool { return !rc.ok })
	if i < 0 {
		t.Fatal("the leader was never cut off")
	}
	leader := got[i].instance
	for _, rc := range got[i+1:] {
		if rc.instance == leader {
			t.Fatalf("instance %s delivered after it stopped", leader)
		}
	}
	if len(got) != events+2 {
		t.Errorf("%d requests for %d events and one cut off, want %d", len(got), events+1, events+2)
	}
	t.Logf("%d events, %d requests, the next leader resumed %v after the cut", events+1, len(got), got[i+1].at.Sub(got[i].at))
}

// An event stays until every endpoint has had it; an endpoint's filter
// passes over the events it does not want.
func TestSharedOutboxWaitsForEveryEndpoint(t *testing.T) {
	dsn := newDatabase(t)
	builds, all := newHook(t), newHook(t)
	all.mu.Lock()
	all.decide = func(*http.Request, receipt) bool { return false }
	all.mu.Unlock()
	only := hookEndpoint(builds.URL)
	only.Name, only.Events = "builds", []string{BuildFailed}
	every := hookEndpoint(all.URL)
	every.Name = "all"
	a := startInstance(t, dsn, "a", only, every)
	for _, e := range []Event{{Type: Push, Repo: "app", Tag: "v1"}, {Type: BuildFailed, Rule: "app", Error: "exit 1"}, {Type: Push, Repo: "app", Tag: "end"}} {
		if err := a.Publish(t.Context(), e); err != nil {
			t.Fatal(err)
		}
	}
	rc := <-builds.got
	if rc.typ != BuildFailed {
		t.Fatalf("the filtered endpoint got a %s", rc.typ)
	}
	// A failing endpoint keeps all three; the filtered one's cursor passes
	// the last push.
	eventually(t, "the filtered endpoint's cursor past every event", func() bool {
		c, err := a.shared.cursor(t.Context(), "builds")
		return err == nil && c == 3
	})
	if p := a.Pending(); p != 3 {
		t.Errorf("%d events held, want 3", p)
	}
}

// What a single-process kiln left in the store's outbox moves to the
// shared outbox when it starts in a cluster: delivered once, in order,
// before what the cluster publishes, and no longer in the store.
func TestSharedOutboxTakesOverTheStores(t *testing.T) {
	store := storage.NewInMemory(storage.Options{})
	single := newNotifier(t, store, new(receiver), Endpoint{URL: "http://hook/"})
	for i := range 3 {
		if err := single.Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// It stops before delivering them.
	dsn := newDatabase(t)
	h := newHook(t)
	a := startOnStore(t, dsn, "a", store, hookEndpoint(h.URL))
	b := startOnStore(t, dsn, "b", store, hookEndpoint(h.URL))
	publishAlternately(t, 0, a, b)
	got := h.until(t, "end")
	if want := wantTags(3); !slices.Equal(tags(got), want) || len(got) != len(want) {
		t.Fatalf("the hook got %v, want %v once each", tags(got), want)
	}
	if left, err := store.Events(t.Context()); err != nil || len(left) != 0 {
		t.Errorf("the store's outbox holds %d events (%v), want none", len(left), err)
	}
}
