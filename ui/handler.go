package ui

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
)

// Paths the pages answer: Root (the repositories) and everything under
// Prefix. Everything else belongs to the registry and the APIs.
const (
	Root   = "/"
	Prefix = "/ui/"
)

// Serves reports whether path is one of the UI's.
func Serves(path string) bool { return path == Root || strings.HasPrefix(path, Prefix) }

// Options configure the pages.
type Options struct {
	Catalog Catalog
	Builds  Builds // nil: no build pages
	Usage   Usage  // nil: the storage page shows no usage
	// Cache measures the pull-through cache; nil: the storage page shows
	// no cache.
	Cache func(ctx context.Context) (CacheUsage, error)
	// Challenge is the WWW-Authenticate value the login link answers an
	// anonymous browser with ("" when kiln has no logins).
	Challenge string
	Logger    *slog.Logger
}

type handler struct {
	opts  Options
	pages *pages
	mux   *http.ServeMux
}

// New returns the handler of the pages; give it only paths Serves accepts.
func New(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &handler{opts: opts, pages: parsePages(), mux: http.NewServeMux()}
	static, _ := fs.Sub(assets, "static")
	h.mux.Handle("GET "+Prefix+"static/", cached(http.StripPrefix(Prefix+"static/", http.FileServerFS(static))))
	h.mux.HandleFunc("GET /{$}", h.repositories)
	h.mux.HandleFunc("GET "+Prefix+"repo", h.repository)
	h.mux.HandleFunc("GET "+Prefix+"builds", h.builds)
	h.mux.HandleFunc("GET "+Prefix+"build", h.build)
	h.mux.HandleFunc("GET "+Prefix+"graph", h.graph)
	h.mux.HandleFunc("GET "+Prefix+"storage", h.storage)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Pages only read: actions go to the API, under /kiln/v1.
			w.Header().Set("Allow", "GET, HEAD")
			h.fail(w, r, http.StatusMethodNotAllowed, "pages only read; actions are under /kiln/v1")
			return
		}
		h.fail(w, r, http.StatusNotFound, "no such page")
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	// Only this origin's scripts, styles and images: a name that slipped
	// past escaping still could not load or run anything.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	w.Header().Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// cached lets browsers keep the embedded assets: pages link them with
// their version in the URL (see assetsVersion).
func cached(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=86400")
		next.ServeHTTP(w, r)
	})
}
