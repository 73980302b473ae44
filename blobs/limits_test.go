package blobs_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"kiln/auth/identity"
	"kiln/registry"
	"kiln/storage"
)

// bodyReads wraps h so that every request reports on read when the
// handler first reads its body: the request then holds an upload slot.
func bodyReads(h http.Handler, read chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			r.Body = &firstRead{ReadCloser: r.Body, read: read}
		}
		h.ServeHTTP(w, r)
	})
}

type firstRead struct {
	io.ReadCloser
	read chan<- struct{}
	done bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	if !f.done {
		f.done = true
		f.read <- struct{}{}
	}
	return f.ReadCloser.Read(p)
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip: another client address as far as the server can tell.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

type response struct {
	status     int
	retryAfter string
	code       string
}

// stalled is a PATCH whose body never ends until the test closes it.
type stalled struct {
	pw   *io.PipeWriter
	done chan response
}

// patch starts a PATCH with an endless body on a new session in repo and
// returns once the server either reads the body (the request holds a
// slot: held is true) or answers it.
func patch(t *testing.T, c *http.Client, url string, read <-chan struct{}) (s *stalled, held bool, r response) {
	t.Helper()
	resp, err := c.Post(url+"/v2/share/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("open session: %d", resp.StatusCode)
	}
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	s = &stalled{pw: pw, done: make(chan response, 1)}
	req, _ := http.NewRequestWithContext(context.Background(), "PATCH", url+loc, pr)
	go func() {
		resp, err := c.Do(req)
		if err != nil {
			s.done <- response{}
			return
		}
		defer resp.Body.Close()
		var body struct{ Errors []struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&body)
		r := response{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
		if len(body.Errors) == 1 {
			r.code = body.Errors[0].Code
		}
		s.done <- r
	}()
	go pw.Write([]byte("x")) // one byte, then nothing: a trickle
	select {
	case <-read:
		return s, true, response{}
	case r := <-s.done:
		return s, false, r
	}
}

// Finding: one client trickling bytes on many PATCHes held every upload
// slot, so nobody else could push.
func TestUploadSlotShare(t *testing.T) {
	t.Parallel()
	const slots = 8 // a client may hold a quarter: 2
	read := make(chan struct{})
	api := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{MaxConcurrentUploads: slots})
	srv := httptest.NewServer(bodyReads(api, read))
	t.Cleanup(srv.Close)

	greedy := clientFrom("127.0.0.2")
	held := 0
	var refused *response
	for range slots {
		_, ok, r := patch(t, greedy, srv.URL, read)
		if ok {
			held++
			continue
		}
		refused = &r
		break
	}
	if held != 2 {
		t.Fatalf("one client holds %d of %d upload slots, want 2 (a quarter)", held, slots)
	}
	if refused.status != http.StatusTooManyRequests || refused.code != "TOOMANYREQUESTS" || refused.retryAfter == "" {
		t.Fatalf("client past its share: %+v, want 429 TOOMANYREQUESTS with Retry-After", *refused)
	}
	// Another client still gets a slot.
	s, ok, r := patch(t, clientFrom("127.0.0.3"), srv.URL, read)
	if !ok {
		t.Fatalf("other client refused while one holds its share: %+v", r)
	}
	s.pw.Close()
	if r := <-s.done; r.status != http.StatusAccepted {
		t.Fatalf("other client's PATCH: %+v", r)
	}
}

// asUser stands for the authentication in front of the API: it admits
// every request of c as user.
type asUser struct {
	user string
	next http.RoundTripper
}

func (u asUser) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Test-User", u.user)
	return u.next.RoundTrip(r)
}

// Logged-in users get their share each, even from one address (a CI
// host, a NAT).
func TestUploadSlotShareByUser(t *testing.T) {
	t.Parallel()
	read := make(chan struct{})
	api := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{MaxConcurrentUploads: 8})
	authenticated := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("X-Test-User"); u != "" {
			r = r.WithContext(identity.WithUser(r.Context(), u))
		}
		api.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(bodyReads(authenticated, read))
	t.Cleanup(srv.Close)
	alice := &http.Client{Transport: asUser{"alice", http.DefaultTransport}}
	bob := &http.Client{Transport: asUser{"bob", http.DefaultTransport}}
	for i := range 2 {
		if _, ok, r := patch(t, alice, srv.URL, read); !ok {
			t.Fatalf("alice's upload %d refused: %+v", i+1, r)
		}
	}
	if _, ok, r := patch(t, alice, srv.URL, read); ok || r.status != http.StatusTooManyRequests {
		t.Fatalf("alice's third upload: held %v, %+v; want 429", ok, r)
	}
	// Anonymous requests from the same address are another client.
	for name, c := range map[string]*http.Client{"bob": bob, "anonymous": srv.Client()} {
		s, ok, r := patch(t, c, srv.URL, read)
		if !ok {
			t.Fatalf("%s refused while alice holds her share: %+v", name, r)
		}
		s.pw.Close()
		if r := <-s.done; r.status != http.StatusAccepted {
			t.Fatalf("%s's PATCH: %+v", name, r)
		}
	}
}
