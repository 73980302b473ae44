package ui

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/auth/identity"
	"kiln/storage"
)

func TestAssetsAndHeaders(t *testing.T) {
	t.Parallel()
	h := newUI(storage.NewInMemory(storage.Options{}), &fakeBuilds{})
	for _, p := range []string{"/ui/static/style.css", "/ui/static/app.js"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != 200 || w.Body.Len() == 0 || w.Header().Get("Cache-Control") == "" {
			t.Errorf("%s: %d, %d bytes, Cache-Control %q", p, w.Code, w.Body.Len(), w.Header().Get("Cache-Control"))
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	// Assets are linked by version, so browsers may keep them.
	mustContain(t, w.Body.String(), `href="/ui/static/style.css?v=`+assetsVersion()+`"`, `src="/ui/static/app.js?v=`+assetsVersion()+`"`)
	if len(assetsVersion()) != 12 {
		t.Errorf("assets version %q", assetsVersion())
	}
	// Pages are self-contained: nothing from another origin.
	mustNotContain(t, w.Body.String(), "http://", "https://")

	if code, body := get(t, h, "/ui/nothing"); code != http.StatusNotFound || !strings.Contains(body, "no such page") {
		t.Errorf("unknown page: %d", code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/ui/graph", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST a page: %d, want 405", w.Code)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	h := New(Options{Catalog: storage.NewInMemory(storage.Options{}), Challenge: `Basic realm="kiln"`, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	mustContain(t, w.Body.String(), `href="/?login=1"`)

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/?login=1", nil))
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `Basic realm="kiln"` {
		t.Errorf("anonymous login: %d %q, want 401 with the challenge", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	r := httptest.NewRequest("GET", "/?login=1", nil)
	r = r.WithContext(identity.WithUser(context.Background(), "alice"))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Errorf("logged in: %d to %q, want 303 to /", w.Code, w.Header().Get("Location"))
	}
	r.URL.RawQuery = ""
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	mustContain(t, w.Body.String(), ">alice<")
	mustNotContain(t, w.Body.String(), "Log in")
}

// maxPage is the bound on any page.
const maxPage = 1 << 20

func TestPageSizes(t *testing.T) {
	t.Parallel()
	s := storage.NewInMemory(storage.Options{})
	for i := range 1000 {
		pushImage(t, s, fmt.Sprintf("team-with-a-long-name/service-%04d", i), "v1", nil)
	}
	for i := range 300 {
		pushImage(t, s, "many-tags", fmt.Sprintf("v%d", i), nil)
	}
	h := newUI(s, &fakeBuilds{rules: manyRules(), records: records(500, "chain3-step4")})
	for _, p := range []string{"/", "/?page=10", "/ui/repo?name=many-tags", "/ui/builds", "/ui/graph", "/ui/storage", "/ui/build?id=20260301T000000-000001-0001"} {
		code, body := get(t, h, p)
		if code != 200 {
			t.Errorf("%s: %d", p, code)
		}
		if len(body) > maxPage {
			t.Errorf("%s: %d bytes, over %d", p, len(body), maxPage)
		}
		t.Logf("%s: %d bytes", p, len(body))
	}
}
