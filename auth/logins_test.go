package auth

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// blockingChecks replaces a's password check by one that waits for
// release, and reports each call on entered; peak is the most checks
// seen running at once.
type blockingChecks struct {
	entered chan struct{}
	release chan struct{}
	running atomic.Int32
	peak    atomic.Int32
	calls   atomic.Int32
}

func blockChecks(a *Authenticator, n int) *blockingChecks {
	b := &blockingChecks{entered: make(chan struct{}, n), release: make(chan struct{})}
	a.compare = func(hash, pw []byte) error {
		b.calls.Add(1)
		now := b.running.Add(1)
		for p := b.peak.Load(); now > p && !b.peak.CompareAndSwap(p, now); p = b.peak.Load() {
		}
		b.entered <- struct{}{}
		<-b.release
		b.running.Add(-1)
		return bcrypt.ErrMismatchedHashAndPassword
	}
	return b
}

// concurrentLogins sends n wrong logins at once, from addr(i), and
// returns their statuses once all are done. Checks are held until every
// request has either reached the check or been answered without one, so
// all n race for the limiter and the check slots at the same time.
func concurrentLogins(t *testing.T, a *Authenticator, n int, addr func(i int) string) (statuses []int, b *blockingChecks) {
	t.Helper()
	b = blockChecks(a, n)
	answered := make(chan int, n)
	statuses = make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w, _ := do(a, "GET", "/v2/", "alice", "wrong", addr(i))
			statuses[i] = w.Code
			answered <- w.Code
		})
	}
	// Every request either enters the check (and stays there) or is
	// answered without one (429); nothing else can end the wait.
	for range n {
		select {
		case <-b.entered:
		case code := <-answered:
			if code != http.StatusTooManyRequests {
				t.Errorf("answered before any check ran: %d", code)
			}
		}
	}
	close(b.release)
	wg.Wait()
	return statuses, b
}

func count(statuses []int, code int) int {
	n := 0
	for _, s := range statuses {
		if s == code {
			n++
		}
	}
	return n
}

// Finding: the limiter was checked before bcrypt and counted after it, so
// concurrent attempts all got through.
func TestConcurrentFailedLoginsReserveTheLimit(t *testing.T) {
	t.Parallel()
	a, _, _, _ := setup(t, false) // 3 failed logins a minute
	setCheckSlots(a, 64, 0)
	statuses, b := concurrentLogins(t, a, 20, func(int) string { return "192.0.2.30" })
	if got := b.calls.Load(); got != 3 {
		t.Fatalf("%d password checks for 20 concurrent wrong logins, want 3 (the limit)", got)
	}
	if count(statuses, 401) != 3 || count(statuses, 429) != 17 {
		t.Fatalf("statuses %v, want 3×401 and 17×429", statuses)
	}
}

// Finding: password checks ran without bound and saturated the CPU.
func TestPasswordChecksAreBounded(t *testing.T) {
	t.Parallel()
	a, _, _, _ := setup(t, false)
	setCheckSlots(a, 2, 0) // excess is refused at once, not after a wait
	statuses, b := concurrentLogins(t, a, 6, func(i int) string { return "192.0.2." + strconv.Itoa(40+i) })
	if p := b.peak.Load(); p > 2 {
		t.Fatalf("%d password checks ran at once, want at most 2", p)
	}
	if count(statuses, 401) != 2 || count(statuses, 429) != 4 {
		t.Fatalf("statuses %v, want 2×401 and 4×429", statuses)
	}
	// Refusals for lack of a check slot are not failed logins: the same
	// addresses still have their whole allowance.
	a.compare = bcrypt.CompareHashAndPassword
	for i := range 6 {
		if w, _ := do(a, "GET", "/v2/", "alice", "secret", "192.0.2."+strconv.Itoa(40+i)); w.Code != 200 {
			t.Fatalf("correct login after the burst: %d", w.Code)
		}
	}
}

// emptyBasic sends "Authorization: Basic Og==" (":"), what skopeo,
// podman, buildah and CRI-O answer a challenge with when they have no
// credentials.
func emptyBasic(a *Authenticator, method, path, addr string) *httptest.ResponseRecorder {
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = addr + ":40000"
	r.Header.Set("Authorization", "Basic Og==")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Finding: empty credentials counted as failed logins, so after 10 of them
// correct logins from that address got 429.
func TestEmptyCredentialsAreNoCredentials(t *testing.T) {
	t.Parallel()
	for _, anonymous := range []bool{false, true} {
		a, _, _, calls := setup(t, anonymous) // 3 failed logins a minute
		for i := range 20 {
			w := emptyBasic(a, "PUT", "/v2/a/manifests/latest", "192.0.2.50")
			if w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("anonymous=%v: empty credentials %d: status %d, challenge %q; want a 401 challenge",
					anonymous, i+1, w.Code, w.Header().Get("WWW-Authenticate"))
			}
		}
		if n := calls.Load(); n != 0 {
			t.Fatalf("anonymous=%v: %d password checks for empty credentials", anonymous, n)
		}
		if w, seen := do(a, "PUT", "/v2/a/manifests/latest", "alice", "secret", "192.0.2.50"); w.Code != 200 || seen != "alice" {
			t.Fatalf("anonymous=%v: correct login after 20 empty ones: status %d %s", anonymous, w.Code, w.Body)
		}
	}
}

// Finding: an unknown user cost a bcrypt of cost 10, a wrong password for
// a user of the file the file's cost (htpasswd -B: 5), so timing told
// which names exist. The check's cost is asserted, not its time.
func TestUnknownUserCostsAsMuchAsKnown(t *testing.T) {
	t.Parallel()
	a, path, _, _ := setup(t, false) // alice at bcrypt.MinCost
	var costs []int
	a.compare = func(hash, pw []byte) error {
		c, err := bcrypt.Cost(hash)
		if err != nil {
			t.Errorf("check against a non-bcrypt hash: %v", err)
		}
		costs = append(costs, c)
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	do(a, "GET", "/v2/", "alice", "wrong", "192.0.2.60")
	do(a, "GET", "/v2/", "nobody", "wrong", "192.0.2.61")
	if len(costs) != 2 || costs[0] != costs[1] {
		t.Fatalf("bcrypt costs (wrong password, unknown user) = %v, want equal", costs)
	}
	// With users of several costs, an unknown one costs the highest.
	h6, _ := bcrypt.GenerateFromPassword([]byte("x"), 6)
	rewrite(t, a, path, "alice:"+hashOf(t, "secret")+"\nbob:"+string(h6)+"\n")
	costs = nil
	do(a, "GET", "/v2/", "nobody", "wrong", "192.0.2.62")
	if len(costs) != 1 || costs[0] != 6 {
		t.Fatalf("unknown user checked at cost %v, want 6 (the file's highest)", costs)
	}
}

// Finding: a bearer token kept working after its user was removed from
// the htpasswd file.
func TestTokenRevokedWithItsEntry(t *testing.T) {
	t.Parallel()
	a, path, _, _ := setup(t, true)
	aliceLine := "alice:" + hashOf(t, "secret") + "\n"
	rewrite(t, a, path, aliceLine)
	_, alice := token(t, a, "alice", "secret")
	_, builder := token(t, a, "kiln-builder", "internal-pw")
	// Another user added: alice's token is unaffected.
	rewrite(t, a, path, aliceLine+"bob:"+hashOf(t, "hunter2")+"\n")
	if w, seen := withBearer(a, "PUT", "/v2/a/manifests/latest", alice); w.Code != 200 || seen != "alice" {
		t.Fatalf("token after an unrelated change: status %d", w.Code)
	}
	// alice removed.
	rewrite(t, a, path, "bob:"+hashOf(t, "hunter2")+"\n")
	if w, _ := withBearer(a, "PUT", "/v2/a/manifests/latest", alice); w.Code != 401 {
		t.Fatalf("token of a removed user: status %d, want 401", w.Code)
	}
	if w, seen := withBearer(a, "PUT", "/v2/a/manifests/latest", builder); w.Code != 200 || seen != "kiln-builder" {
		t.Fatalf("internal user's token: status %d", w.Code)
	}
	// bob's password changed.
	_, bob := token(t, a, "bob", "hunter2")
	rewrite(t, a, path, "bob:"+hashOf(t, "hunter3")+"\n#\n")
	if w, _ := withBearer(a, "PUT", "/v2/a/manifests/latest", bob); w.Code != 401 {
		t.Fatalf("token after a password change: status %d, want 401", w.Code)
	}
}

func TestDuplicateUserLastWins(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	content := "alice:" + hashOf(t, "old") + "\nbob:" + hashOf(t, "b") + "\nalice:" + hashOf(t, "new") + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := New(Options{Htpasswd: path, Realm: "r", FailedLoginsPerMinute: 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("a duplicate line refused the file: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "line=3") || !strings.Contains(logs.String(), "user=alice") {
		t.Fatalf("no warning naming line 3 and alice: %s", logs.String())
	}
	if w, _ := do(a, "GET", "/v2/", "alice", "new", "192.0.2.70"); w.Code != 200 {
		t.Fatalf("last entry's password: status %d", w.Code)
	}
	if w, _ := do(a, "GET", "/v2/", "alice", "old", "192.0.2.70"); w.Code != 401 {
		t.Fatalf("first entry's password: status %d, want 401", w.Code)
	}
}

// oauthToken posts the OAuth2 password grant containerd tries first.
func oauthToken(a *Authenticator, form url.Values) *httptest.ResponseRecorder {
	h := a.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	r := httptest.NewRequest("POST", TokenPath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "192.0.2.80:1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestTokenOAuth2Form(t *testing.T) {
	t.Parallel()
	a, _, _, _ := setup(t, true)
	form := url.Values{
		"grant_type": {"password"}, "username": {"alice"}, "password": {"secret"},
		"scope": {"repository:a:pull,push"}, "service": {"kiln test"}, "client_id": {"containerd-client"},
	}
	w := oauthToken(a, form)
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); w.Code != 200 || err != nil || out.AccessToken == "" || out.ExpiresIn <= 0 {
		t.Fatalf("OAuth2 password grant: status %d %s", w.Code, w.Body)
	}
	if w, seen := withBearer(a, "PUT", "/v2/a/manifests/latest", out.AccessToken); w.Code != 200 || seen != "alice" {
		t.Fatalf("OAuth2 token PUT: status %d user %q", w.Code, seen)
	}
	form.Set("password", "wrong")
	if w := oauthToken(a, form); w.Code != 401 || errorCode(t, w) != "UNAUTHORIZED" {
		t.Fatalf("OAuth2 grant with a wrong password: status %d %s", w.Code, w.Body)
	}
	form.Set("grant_type", "refresh_token")
	if w := oauthToken(a, form); w.Code != 400 || errorCode(t, w) != "UNSUPPORTED" {
		t.Fatalf("refresh_token grant: status %d %s, want 400 UNSUPPORTED", w.Code, w.Body)
	}
}
