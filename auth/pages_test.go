package auth

import (
	"net/http"
	"strings"
	"testing"
)

// Web pages read like pulls: without a login only when anonymous pull is
// on; and a browser must be asked for Basic credentials, the only kind
// it can give, also when the registry's clients are sent to the token
// service.
func TestPages(t *testing.T) {
	pages := func(r *http.Request) bool { return r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/") }
	for _, anon := range []bool{false, true} {
		a, _, _, _ := setup(t, anon)
		a.opts.Pages = pages
		w, seen := do(a, "GET", "/ui/graph", "", "", "192.0.2.1")
		if anon && (w.Code != 200 || seen != "") {
			t.Errorf("anonymous pull: GET /ui/graph without login: %d (user %q), want 200 anonymous", w.Code, seen)
		}
		if !anon && (w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ")) {
			t.Errorf("no anonymous pull: GET /ui/graph without login: %d %q, want 401 with a Basic challenge", w.Code, w.Header().Get("WWW-Authenticate"))
		}
		w, _ = do(a, "POST", "/ui/graph", "", "", "192.0.2.1")
		if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("anonymous=%v: POST to a page without login: %d %q, want 401 with a Basic challenge", anon, w.Code, w.Header().Get("WWW-Authenticate"))
		}
		if w, seen := do(a, "GET", "/", "alice", "secret", "192.0.2.1"); w.Code != 200 || seen != "alice" {
			t.Errorf("anonymous=%v: GET / as alice: %d (user %q)", anon, w.Code, seen)
		}
		if w, _ := do(a, "GET", "/kiln/v1/builds", "", "", "192.0.2.1"); w.Code != 401 {
			t.Errorf("anonymous=%v: the build API without login: %d, want 401: only pages are opened", anon, w.Code)
		}
	}
}
