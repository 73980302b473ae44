package auth

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func hashOf(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// setup writes an htpasswd file with alice:secret and returns an
// Authenticator on it, its log and a counter of bcrypt comparisons.
func setup(t *testing.T, anonymousPull bool) (*Authenticator, string, *bytes.Buffer, *atomic.Int32) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte("alice:"+hashOf(t, "secret")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := New(Options{
		Htpasswd: path, AnonymousPull: anonymousPull, Realm: "kiln test",
		FailedLoginsPerMinute: 3,
		Internal:              Credential{Username: "kiln-builder", Password: "internal-pw"},
		Logger:                slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	a.compare = func(hash, pw []byte) error {
		calls.Add(1)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	return a, path, &logs, &calls
}

// do sends one request from addr through a's handler and returns the
// response and the user the next handler saw ("-" if it was not reached).
func do(a *Authenticator, method, path, user, password, addr string) (*httptest.ResponseRecorder, string) {
	seen := "-"
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = User(r.Context()) }))
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = addr + ":40000"
	if user != "" || password != "" {
		r.SetBasicAuth(user, password)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, seen
}

func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("body %q is not one OCI error (%v)", w.Body, err)
	}
	return body.Errors[0].Code
}

func TestHandler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		anonymous    bool
		method, path string
		user, pw     string
		status       int    // 0: next handler reached
		seen         string // user next saw
	}{
		{"no credentials", false, "GET", "/v2/", "", "", 401, ""},
		{"no credentials pull", false, "GET", "/v2/a/manifests/latest", "", "", 401, ""},
		{"wrong password", false, "GET", "/v2/", "alice", "nope", 401, ""},
		{"unknown user", false, "GET", "/v2/", "bob", "secret", 401, ""},
		{"right password", false, "GET", "/v2/", "alice", "secret", 0, "alice"},
		{"right password push", false, "PUT", "/v2/a/manifests/latest", "alice", "secret", 0, "alice"},
		{"internal user", false, "POST", "/v2/a/blobs/uploads/", "kiln-builder", "internal-pw", 0, "kiln-builder"},
		{"internal user wrong password", false, "POST", "/v2/a/blobs/uploads/", "kiln-builder", "secret", 401, ""},
		{"anonymous ping", true, "GET", "/v2/", "", "", 401, ""}, // clients must learn of the token service
		{"anonymous GET", true, "GET", "/v2/a/manifests/latest", "", "", 0, ""},
		{"anonymous HEAD", true, "HEAD", "/v2/a/blobs/sha256:00", "", "", 0, ""},
		{"anonymous PUT", true, "PUT", "/v2/a/manifests/latest", "", "", 401, ""},
		{"anonymous POST", true, "POST", "/v2/a/blobs/uploads/", "", "", 401, ""},
		{"anonymous DELETE", true, "DELETE", "/v2/a/manifests/latest", "", "", 401, ""},
		{"anonymous wrong password still checked", true, "GET", "/v2/", "alice", "nope", 401, ""},
		{"anonymous right password", true, "PUT", "/v2/a/manifests/latest", "alice", "secret", 0, "alice"},
		{"anonymous builds API", true, "GET", "/kiln/v1/builds", "", "", 401, ""},
		{"anonymous admin gc", true, "POST", "/kiln/v1/gc", "", "", 401, ""},
		{"builds API with user", true, "GET", "/kiln/v1/builds", "alice", "secret", 0, "alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _, _, _ := setup(t, tc.anonymous)
			w, seen := do(a, tc.method, tc.path, tc.user, tc.pw, "192.0.2.1")
			if tc.status == 0 {
				if seen != tc.seen || w.Code != 200 {
					t.Fatalf("next saw user %q, status %d; want %q, 200", seen, w.Code, tc.seen)
				}
				return
			}
			if w.Code != tc.status || seen != "-" {
				t.Fatalf("status %d, next reached: %v; want %d, not reached", w.Code, seen != "-", tc.status)
			}
			want := `Basic realm="kiln test"`
			if tc.anonymous && tc.user == "" {
				want = `Bearer realm="http://example.com/kiln/v1/token",service="kiln test"`
			}
			if got := w.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			if c := errorCode(t, w); c != "UNAUTHORIZED" {
				t.Errorf("code %s, want UNAUTHORIZED", c)
			}
		})
	}
}

func TestBearerRefused(t *testing.T) {
	t.Parallel()
	a, _, _, _ := setup(t, true)
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("next reached") }))
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.Header.Set("Authorization", "Bearer abc")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 401 || errorCode(t, w) != "UNAUTHORIZED" {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	a, _, logs, calls := setup(t, false)
	now := time.Unix(1_000_000, 0)
	a.limiter.now = func() time.Time { return now }
	for i := range 3 {
		if w, _ := do(a, "GET", "/v2/", "alice", "wrong", "192.0.2.7"); w.Code != 401 {
			t.Fatalf("failure %d: status %d, want 401", i+1, w.Code)
		}
	}
	before := calls.Load()
	// Past the limit even the right password is not checked.
	w, seen := do(a, "GET", "/v2/", "alice", "secret", "192.0.2.7")
	if w.Code != 429 || seen != "-" || errorCode(t, w) != "TOOMANYREQUESTS" {
		t.Fatalf("status %d, next reached %v, body %s; want 429 TOOMANYREQUESTS", w.Code, seen != "-", w.Body)
	}
	if calls.Load() != before {
		t.Fatalf("bcrypt ran %d times while limited", calls.Load()-before)
	}
	if ra := w.Header().Get("Retry-After"); ra != "20" {
		t.Errorf("Retry-After %q, want 20 (3 a minute refill one every 20s)", ra)
	}
	// Another address is not affected, and successes are not limited.
	for range 5 {
		if w, _ := do(a, "GET", "/v2/", "alice", "secret", "192.0.2.8"); w.Code != 200 {
			t.Fatalf("other address: status %d", w.Code)
		}
	}
	// A refilled token lets one more try through.
	now = now.Add(20 * time.Second)
	if w, seen := do(a, "GET", "/v2/", "alice", "secret", "192.0.2.7"); w.Code != 200 || seen != "alice" {
		t.Fatalf("after refill: status %d", w.Code)
	}
	if strings.Contains(logs.String(), "wrong") || strings.Contains(logs.String(), "secret") {
		t.Fatalf("log holds a password: %s", logs)
	}
}

func TestLimiterForgetsIdleAddresses(t *testing.T) {
	t.Parallel()
	l := newFailureLimiter(2)
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	b, _ := l.reserve("192.0.2.1")
	l.settle(b, true)
	now = now.Add(2 * time.Minute)
	l.reserve("192.0.2.2") // sweeps: .1 has refilled
	if _, ok := l.buckets["192.0.2.1"]; ok || len(l.buckets) != 1 {
		t.Fatalf("buckets after sweep: %v", l.buckets)
	}
}

func TestCacheSkipsBcrypt(t *testing.T) {
	t.Parallel()
	a, _, _, calls := setup(t, false)
	for range 10 {
		if w, _ := do(a, "GET", "/v2/a/blobs/sha256:00", "alice", "secret", "192.0.2.1"); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("bcrypt ran %d times for 10 requests, want 1", n)
	}
	// A wrong password is never served from the cache.
	if w, _ := do(a, "GET", "/v2/", "alice", "secret2", "192.0.2.1"); w.Code != 401 {
		t.Fatalf("wrong password: status %d", w.Code)
	}
}

// rewrite replaces the file and pushes the reload clock past its
// once-a-second check.
func rewrite(t *testing.T, a *Authenticator, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Size differs in every rewrite of these tests; the mtime may not.
	a.file.mu.Lock()
	a.file.lastCheck = time.Time{}
	a.file.mu.Unlock()
}

func TestReload(t *testing.T) {
	t.Parallel()
	a, path, logs, _ := setup(t, false)
	if w, _ := do(a, "GET", "/v2/", "alice", "secret", "192.0.2.1"); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	rewrite(t, a, path, "bob:"+hashOf(t, "hunter2")+"\n")
	if w, _ := do(a, "GET", "/v2/", "alice", "secret", "192.0.2.1"); w.Code != 401 {
		t.Fatalf("removed user: status %d, want 401", w.Code)
	}
	if w, seen := do(a, "GET", "/v2/", "bob", "hunter2", "192.0.2.2"); w.Code != 200 || seen != "bob" {
		t.Fatalf("added user: status %d", w.Code)
	}
	// A bad file keeps the users already loaded.
	rewrite(t, a, path, "this line has no colon and is long enough to change the size\n")
	if w, _ := do(a, "GET", "/v2/", "bob", "hunter2", "192.0.2.2"); w.Code != 200 {
		t.Fatalf("after bad reload: status %d, want 200 (old users kept)", w.Code)
	}
	if !strings.Contains(logs.String(), "reload failed") {
		t.Fatalf("bad reload not logged: %s", logs)
	}
}

func TestReloadFlushesCache(t *testing.T) {
	t.Parallel()
	a, path, _, calls := setup(t, false)
	do(a, "GET", "/v2/", "alice", "secret", "192.0.2.1")
	rewrite(t, a, path, "alice:"+hashOf(t, "secret")+"\n#\n")
	n := calls.Load()
	if w, _ := do(a, "GET", "/v2/", "alice", "secret", "192.0.2.1"); w.Code != 200 {
		t.Fatalf("status %d", w.Code)
	}
	if calls.Load() != n+1 {
		t.Fatalf("bcrypt not rerun after reload")
	}
}

func TestNonBcryptIgnored(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	md5 := "carol:$apr1$Vm2Ptk0b$0ZfyA6lJ8BtxKtUIb5KDM/"
	sha := "dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="
	content := "alice:" + hashOf(t, "secret") + "\n" + md5 + "\n" + sha + "\nerin:plaintext\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := New(Options{Htpasswd: path, Realm: "r", FailedLoginsPerMinute: 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(a.file.users().hashes); got != 1 {
		t.Fatalf("%d users loaded, want only alice", got)
	}
	for _, line := range []string{"line=2", "line=3", "line=4"} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no warning naming %s: %s", line, logs.String())
		}
	}
	for _, secret := range []string{"$apr1$", "{SHA}", "plaintext"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log holds hash %q: %s", secret, logs.String())
		}
	}
	if w, _ := do(a, "GET", "/v2/", "erin", "plaintext", "192.0.2.1"); w.Code != 401 {
		t.Fatalf("plain-text entry accepted: status %d", w.Code)
	}
}

func TestBadFileAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{
		"no colon":   "alice\n",
		"empty hash": "alice:\n",
		"empty name": ":" + hashOf(t, "a") + "\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := New(Options{Htpasswd: path, Realm: "r", FailedLoginsPerMinute: 1}); err == nil {
			t.Errorf("%s: New accepted the file", name)
		}
	}
	if _, err := New(Options{Htpasswd: filepath.Join(dir, "missing"), Realm: "r", FailedLoginsPerMinute: 1}); err == nil {
		t.Error("missing file accepted")
	}
}

// token fetches a token as the given user ("" for none) and returns the
// status and token.
func token(t *testing.T, a *Authenticator, user, password string) (int, string) {
	t.Helper()
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("token request reached next") }))
	r := httptest.NewRequest("GET", TokenPath+"?service=kiln&scope=repository:a:pull,push", nil)
	r.RemoteAddr = "192.0.2.9:1"
	if user != "" {
		r.SetBasicAuth(user, password)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code == 200 && (out.Token == "" || out.Token != out.AccessToken || out.ExpiresIn <= 0) {
		t.Fatalf("token response %s", w.Body)
	}
	return w.Code, out.Token
}

func withBearer(a *Authenticator, method, path, tok string) (*httptest.ResponseRecorder, string) {
	seen := "-"
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = User(r.Context()) }))
	r := httptest.NewRequest(method, path, nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, seen
}

func TestTokens(t *testing.T) {
	t.Parallel()
	a, _, _, _ := setup(t, true)
	code, anon := token(t, a, "", "")
	if code != 200 {
		t.Fatalf("anonymous token: status %d", code)
	}
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v2/", 200},
		{"GET", "/v2/a/manifests/latest", 200},
		{"PUT", "/v2/a/manifests/latest", 401},
		{"GET", "/kiln/v1/builds", 401},
	} {
		if w, _ := withBearer(a, tc.method, tc.path, anon); w.Code != tc.want {
			t.Errorf("anonymous token %s %s: status %d, want %d", tc.method, tc.path, w.Code, tc.want)
		}
	}
	code, alice := token(t, a, "alice", "secret")
	if code != 200 {
		t.Fatalf("alice's token: status %d", code)
	}
	if w, seen := withBearer(a, "PUT", "/v2/a/manifests/latest", alice); w.Code != 200 || seen != "alice" {
		t.Fatalf("alice's token PUT: status %d user %q", w.Code, seen)
	}
	if code, _ := token(t, a, "alice", "wrong"); code != 401 {
		t.Fatalf("token with a wrong password: status %d, want 401", code)
	}
	// Tampering breaks the signature.
	forged := anon[:len(anon)-2] + "AA"
	if w, _ := withBearer(a, "GET", "/v2/", forged); w.Code != 401 {
		t.Fatalf("forged token: status %d", w.Code)
	}
	a.tokens.now = func() time.Time { return time.Now().Add(tokenTTL + time.Second) }
	if w, _ := withBearer(a, "GET", "/v2/", alice); w.Code != 401 || !strings.Contains(w.Body.String(), "expired") {
		t.Fatalf("expired token: status %d %s", w.Code, w.Body)
	}
}

func TestTokenEndpointRateLimited(t *testing.T) {
	t.Parallel()
	a, _, _, calls := setup(t, true)
	for range 3 {
		token(t, a, "alice", "wrong")
	}
	n := calls.Load()
	if code, _ := token(t, a, "alice", "secret"); code != 429 {
		t.Fatalf("token after 3 failures: status %d, want 429", code)
	}
	if calls.Load() != n {
		t.Fatal("bcrypt ran while limited")
	}
}

// setCheckSlots gives a n password check slots, each waited for at most
// wait (0: a request finding none free gets 429 at once).
func setCheckSlots(a *Authenticator, n int, wait time.Duration) {
	a.checks = make(chan struct{}, n)
	a.checkWait = wait
}
