package notify

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"kiln/storage"
)

// receiver is a fake endpoint: it records every request and answers with
// what fail says.
type receiver struct {
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte
	at     []time.Time
	fail   func(n int) bool // whether the n-th request (from 0) fails
}

func (r *receiver) RoundTrip(req *http.Request) (*http.Response, error) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	n := len(r.got)
	r.got = append(r.got, req)
	r.bodies = append(r.bodies, body)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	status := http.StatusOK
	if r.fail != nil && r.fail(n) {
		status = http.StatusServiceUnavailable
	}
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

// ids returns the event id of each request, in arrival order.
func (r *receiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, req := range r.got {
		out = append(out, req.Header.Get("X-Kiln-Event-Id"))
	}
	return out
}

func newNotifier(t *testing.T, store *storage.Store, rt http.RoundTripper, eps ...Endpoint) *Notifier {
	t.Helper()
	n, err := New(t.Context(), store, eps, Options{Client: &http.Client{Transport: rt}, Source: Source{URL: "https://kiln.example", Addr: "kiln:5000", InstanceID: "i-1"}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRetriesWithBackoffAndKeepsOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := storage.NewInMemory(storage.Options{})
		// The first three attempts fail: the first event waits 1s, 2s, 4s.
		rec := &receiver{fail: func(n int) bool { return n < 3 }}
		n := newNotifier(t, store, rec, Endpoint{URL: "http://hook/", MinBackoff: time.Second, MaxBackoff: 3 * time.Second})
		start := time.Now()
		var published []string
		for i, tag := range []string{"v1", "v2", "v3"} {
			if err := n.Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: tag, Digest: "sha256:" + strings.Repeat("a", 63) + string(rune('0'+i))}); err != nil {
				t.Fatal(err)
			}
		}
		stored, _ := store.Events(t.Context())
		for _, se := range stored {
			published = append(published, se.ID)
		}
		go n.Run(t.Context())
		// The bubble's clock jumps past every backoff.
		time.Sleep(time.Minute)
		synctest.Wait()
		if n.Pending() != 0 {
			t.Fatalf("%d events still pending", n.Pending())
		}
		got := rec.ids()
		want := []string{published[0], published[0], published[0], published[0], published[1], published[2]}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("delivered %v, want %v", got, want)
		}
		// Backoff 1s, 2s, then capped at 3s.
		var gaps []time.Duration
		for i := 1; i < 4; i++ {
			gaps = append(gaps, rec.at[i].Sub(rec.at[i-1]))
		}
		if gaps[0] != time.Second || gaps[1] != 2*time.Second || gaps[2] != 3*time.Second {
			t.Errorf("waits between attempts %v, want [1s 2s 3s]", gaps)
		}
		if total := rec.at[len(rec.at)-1].Sub(start); total != 6*time.Second {
			t.Errorf("all delivered after %v, want 6s", total)
		}
		if left, _ := store.Events(t.Context()); len(left) != 0 {
			t.Errorf("outbox holds %d events after delivery, want 0", len(left))
		}
	})
}

func TestRestartRedeliversTheOutbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := storage.NewInMemory(storage.Options{})
		down := &receiver{fail: func(int) bool { return true }}
		first := newNotifier(t, store, down, Endpoint{URL: "http://hook/"})
		for _, tag := range []string{"a", "b"} {
			if err := first.Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: tag}); err != nil {
				t.Fatal(err)
			}
		}
		// The process dies: its Notifier never runs again.
		up := new(receiver)
		second := newNotifier(t, store, up, Endpoint{URL: "http://hook/"})
		if second.Pending() != 2 {
			t.Fatalf("after restart %d events pending, want 2", second.Pending())
		}
		go second.Run(t.Context())
		synctest.Wait()
		var tags []string
		for _, b := range up.bodies {
			var ce struct{ Data Event }
			if err := json.Unmarshal(b, &ce); err != nil {
				t.Fatal(err)
			}
			tags = append(tags, ce.Data.Tag)
		}
		if strings.Join(tags, ",") != "a,b" {
			t.Errorf("redelivered tags %v, want [a b]", tags)
		}
		if left, _ := store.Events(t.Context()); len(left) != 0 {
			t.Errorf("outbox holds %d events, want 0", len(left))
		}
	})
}

func TestFilterAndEveryEndpointBeforeDelete(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := storage.NewInMemory(storage.Options{})
		builds, all := new(receiver), &receiver{fail: func(int) bool { return true }}
		n, err := New(t.Context(), store, []Endpoint{
			{Name: "builds", URL: "http://builds/", Events: []string{BuildFailed}},
			{Name: "all", URL: "http://all/"},
		}, Options{Client: &http.Client{Transport: routes{"builds": builds, "all": all}}})
		if err != nil {
			t.Fatal(err)
		}
		n.Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: "v1"})
		n.Publish(t.Context(), Event{Type: BuildFailed, Rule: "app", Error: "exit 1"})
		go n.Run(t.Context())
		synctest.Wait()
		if len(builds.got) != 1 || builds.got[0].Header.Get("X-Kiln-Event-Type") != BuildFailed {
			t.Fatalf("the filtered endpoint got %d requests, want only the failed build", len(builds.got))
		}
		// "all" has not taken either yet: both stay in the outbox.
		if left, _ := store.Events(t.Context()); len(left) != 2 {
			t.Errorf("outbox holds %d events, want 2", len(left))
		}
	})
}

type routes map[string]http.RoundTripper

func (r routes) RoundTrip(req *http.Request) (*http.Response, error) {
	rt, ok := r[req.URL.Host]
	if !ok {
		return nil, errors.New("no route")
	}
	return rt.RoundTrip(req)
}

func TestNothingWantedNothingStored(t *testing.T) {
	store := storage.NewInMemory(storage.Options{})
	n := newNotifier(t, store, new(receiver), Endpoint{URL: "http://hook/", Events: []string{Delete}})
	if err := n.Publish(t.Context(), Event{Type: Push, Repo: "app"}); err != nil {
		t.Fatal(err)
	}
	if left, _ := store.Events(t.Context()); len(left) != 0 {
		t.Errorf("an event no endpoint wants was stored")
	}
	var none *Notifier // kiln without endpoints
	if err := none.Publish(t.Context(), Event{Type: Push}); err != nil || none.Pending() != 0 {
		t.Errorf("a nil Notifier: %v", err)
	}
}

func TestSignature(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := storage.NewInMemory(storage.Options{})
		rec := new(receiver)
		n := newNotifier(t, store, rec, Endpoint{URL: "http://hook/", Secret: []byte("s3cret"), Headers: map[string]string{"Authorization": "Bearer x"}})
		n.Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: "v1"})
		go n.Run(t.Context())
		synctest.Wait()
		req, body := rec.got[0], rec.bodies[0]
		sig := req.Header.Get(SignatureHeader)
		if !strings.HasPrefix(sig, "sha256=") || !Verify([]byte("s3cret"), body, sig) {
			t.Errorf("signature %q does not verify", sig)
		}
		if Verify([]byte("other"), body, sig) || Verify([]byte("s3cret"), append(body, ' '), sig) {
			t.Error("the signature verifies under another secret or body")
		}
		if req.Header.Get("Authorization") != "Bearer x" {
			t.Error("the configured header is missing")
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	ep := Endpoint{MinBackoff: 500 * time.Millisecond, MaxBackoff: 5 * time.Second}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := ep.backoff(i); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i, got, w)
		}
	}
	if got := ep.backoff(200); got != 5*time.Second {
		t.Errorf("backoff(200) = %v (overflow?)", got)
	}
}

// An endpoint in distribution's format is sent pushes and deletes; what
// the format cannot say is skipped, not retried, and not counted.
func TestDistributionEndpointSkipsBuilds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := storage.NewInMemory(storage.Options{})
		rec := new(receiver)
		var attempts int
		n, err := New(t.Context(), store, []Endpoint{{Name: "keel", URL: "http://keel/", Format: Distribution}},
			Options{Client: &http.Client{Transport: rec}, OnDelivery: func(string, bool) { attempts++ }})
		if err != nil {
			t.Fatal(err)
		}
		n.Publish(t.Context(), Event{Type: BuildFailed, Rule: "app"})
		n.Publish(t.Context(), Event{Type: Push, Repo: "app", Tag: "v1", Digest: "sha256:aa"})
		go n.Run(t.Context())
		synctest.Wait()
		if len(rec.got) != 1 || rec.got[0].Header.Get("Content-Type") != "application/vnd.docker.distribution.events.v1+json" || attempts != 1 {
			t.Fatalf("%d requests, %d attempts counted; want the push alone", len(rec.got), attempts)
		}
		if n.Pending() != 0 {
			t.Errorf("%d events pending", n.Pending())
		}
	})
}
