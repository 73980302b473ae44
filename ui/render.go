package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"

	"kiln/auth/identity"
)

//go:embed templates static
var assets embed.FS

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"repositories", "repository", "builds", "build", "graph", "storage", "error"}

type pages struct {
	byName map[string]*template.Template
	assets string // the assets' version, in their URLs
}

func parsePages() *pages {
	p := &pages{byName: map[string]*template.Template{}, assets: assetsVersion()}
	for _, n := range pageNames {
		p.byName[n] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+n+".html"))
	}
	return p
}

// assetsVersion is a digest of the embedded assets: their URLs change
// with them, so browsers may keep them (see cached).
func assetsVersion() string {
	h := sha256.New()
	fs.WalkDir(assets, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := assets.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// view is what layout.html reads; Data is the page's own.
type view struct {
	Assets string // the assets' version
	Title  string
	Nav    string // the header link to mark current
	User   string // "" for anonymous
	Login  bool   // offer the login link
	Data   any
}

// render writes page name with data. It renders to a buffer first so a
// failing template answers 500, not half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, name, title, nav string, data any) {
	v := view{Assets: h.pages.assets, Title: title, Nav: nav, User: identity.User(r.Context()), Data: data}
	v.Login = h.opts.Challenge != "" && v.User == ""
	var buf bytes.Buffer
	if err := h.pages.byName[name].Execute(&buf, v); err != nil {
		h.opts.Logger.Error("rendering a page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail answers with an error page.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.render(w, r, status, "error", http.StatusText(status), "", msg)
}

// internal logs err and answers 500 without its details.
func (h *handler) internal(w http.ResponseWriter, r *http.Request, err error) {
	h.opts.Logger.Error("ui", "path", r.URL.Path, "err", err)
	h.fail(w, r, http.StatusInternalServerError, "kiln could not read what this page shows; see its log")
}
