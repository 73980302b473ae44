package main

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"kiln/config"
)

// serveWithLogin runs kiln with alice:pw in its htpasswd and anonymous as
// given, and returns its base URL.
func serveWithLogin(t *testing.T, anonymous string) string {
	t.Helper()
	cfg := testConfig(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(cfg.Auth.Htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600)
	cfg.Auth.Anonymous = anonymous
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	addr, _ := startServe(t, cfg, slog.New(slog.DiscardHandler))
	return "http://" + addr
}

// The pages follow the API's authentication: reads like pulls, actions
// like the API's writes; and a browser on another site cannot act with
// the credentials it keeps for kiln.
func TestWebUIAuthentication(t *testing.T) {
	t.Parallel()
	do := func(base, method, path, user string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, anonymous := range []string{config.AnonymousNone, config.AnonymousPull} {
		base := serveWithLogin(t, anonymous)
		resp, _ := do(base, "GET", "/", "")
		if anonymous == config.AnonymousNone && (resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ")) {
			t.Errorf("anonymous none: GET / without login: %s %q, want 401 with a Basic challenge", resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
		if anonymous == config.AnonymousPull && resp.StatusCode != 200 {
			t.Errorf("anonymous pull: GET / without login: %s, want 200", resp.Status)
		}
		for _, p := range []string{"/", "/ui/graph", "/ui/builds", "/ui/storage"} {
			if resp, body := do(base, "GET", p, "alice"); resp.StatusCode != 200 || !strings.Contains(body, "<title>") {
				t.Errorf("%s: GET %s as alice: %s", anonymous, p, resp.Status)
			}
		}
		if resp, _ := do(base, "GET", "/?login=1", ""); resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: the login link: %s %q, want a Basic challenge", anonymous, resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
		if resp, _ := do(base, "POST", "/kiln/v1/gc?dry_run=1", ""); resp.StatusCode != 401 {
			t.Errorf("%s: GC without login: %s, want 401", anonymous, resp.Status)
		}
		if resp, _ := do(base, "POST", "/kiln/v1/gc?dry_run=1", "alice", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); resp.StatusCode != 403 {
			t.Errorf("%s: GC from another site with alice's credentials: %s, want 403", anonymous, resp.Status)
		}
		if resp, body := do(base, "POST", "/kiln/v1/gc?dry_run=1", "alice", "Sec-Fetch-Site", "same-origin"); resp.StatusCode != 200 {
			t.Errorf("%s: GC from the page: %s %s", anonymous, resp.Status, body)
		}
		// Other paths stay the registry's.
		if resp, body := do(base, "GET", "/elsewhere", "alice"); resp.StatusCode == 200 || strings.Contains(body, "<html") {
			t.Errorf("%s: GET /elsewhere: %s, a page", anonymous, resp.Status)
		}
	}
}
