package registry

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"kiln/blobs"
	"kiln/distspec"
	"kiln/storage"
)

// api holds what every handler needs.
type api struct {
	store *storage.Store
	blobs *blobs.Handler
	opts  Options
	// routes are the /v2/<name>/... endpoints, in matching order.
	routes []nameRoute
	mux    *mux.Router
}

// handlerFunc is a handler that reports failure as an error, written by
// serve in the spec's JSON form. name is the repository (empty for
// routes without one); arg is the route's last path variable (manifest
// reference, digest or upload id), empty for routes without one.
type handlerFunc func(w http.ResponseWriter, r *http.Request, name, arg string) error

// nameRoute is one /v2/<name>/<suffix> endpoint. Repository names contain
// slashes, so gorilla/mux needs a {name:.+} regular expression per route,
// tried in turn on every request: 14% of a manifest GET's CPU. These
// routes are matched by string operations instead, with exactly the
// regular expressions' semantics (see match); gorilla/mux keeps the
// others (/v2/, /v2/_catalog) and the 404/405 answers for unknown paths.
type nameRoute struct {
	// suffix is what follows the name: the whole rest of the path
	// ("/tags/list"), or, when hasArg, the segment before the last one
	// ("/manifests/"), the last one being the argument.
	suffix   string
	hasArg   bool
	handlers map[string]handlerFunc // by method
}

func newRouter(store *storage.Store, opts Options) http.Handler {
	a := &api{
		store: store,
		blobs: &blobs.Handler{Store: store, DeleteEnabled: opts.DeleteEnabled, Redirect: opts.RedirectBlobs, Logger: opts.Logger,
			MaxBlobSize: opts.MaxBlobSize, Uploads: blobs.NewUploadGate(opts.MaxConcurrentUploads)},
		opts: opts,
	}
	r := mux.NewRouter()
	// Names are validated by the handlers, which answer NAME_INVALID; a
	// cleaned path would turn "../x" into a redirect instead.
	r.SkipClean(true)
	r.NotFoundHandler = http.HandlerFunc(notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)

	v2 := r.PathPrefix("/v2").Subrouter()
	v2.HandleFunc("/", a.base).Methods(http.MethodGet, http.MethodHead)
	v2.HandleFunc("/_catalog", a.serve(a.catalog, "", "")).Methods(http.MethodGet)
	a.mux = r

	// The order is the one the {name:.+} routes had in gorilla/mux: the
	// first route whose path and method match serves the request.
	on := func(h handlerFunc, methods ...string) map[string]handlerFunc {
		m := map[string]handlerFunc{}
		for _, method := range methods {
			m[method] = h
		}
		return m
	}
	a.routes = []nameRoute{
		{suffix: "/tags/list", handlers: on(a.tags, http.MethodGet)},
		{suffix: "/referrers/", hasArg: true, handlers: on(a.referrers, http.MethodGet)},
		{suffix: "/manifests/", hasArg: true, handlers: map[string]handlerFunc{
			http.MethodGet: a.getManifest, http.MethodHead: a.getManifest,
			http.MethodPut:    a.putManifest,
			http.MethodDelete: a.deleteManifest,
		}},
		{suffix: "/blobs/uploads/", handlers: on(a.startUpload, http.MethodPost)},
		{suffix: "/blobs/uploads", handlers: on(a.startUpload, http.MethodPost)},
		{suffix: "/blobs/uploads/", hasArg: true, handlers: on(a.upload, http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete)},
		{suffix: "/blobs/", hasArg: true, handlers: on(a.blob, http.MethodGet, http.MethodHead, http.MethodDelete)},
	}
	return a
}

var apiVersion = []string{"registry/2.0"}

// ServeHTTP marks every answer as the registry v2 API (errors included)
// and routes the request.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Docker-Distribution-API-Version, in its canonical form (no
	// per-request canonicalisation).
	w.Header()["Docker-Distribution-Api-Version"] = apiVersion
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/"); ok {
		for i := range a.routes {
			rt := &a.routes[i]
			if name, arg, ok := rt.match(rest); ok {
				if h := rt.handlers[r.Method]; h != nil {
					a.serveNamed(w, r, h, name, arg)
					return
				}
			}
		}
	}
	// Everything else, including a name route's path with a method it
	// does not take (404, as the {name:.+} routes under the /v2 subrouter
	// answered).
	a.mux.ServeHTTP(w, r)
}

// match reports whether rest (the path after "/v2/") is this route, as
// the gorilla/mux template "/v2/{name:.+}<suffix>" (with "{arg}", i.e.
// [^/]+, after it when hasArg) would: the name is not empty and has no
// newline ("." does not match one); the argument is the non-empty last
// segment.
func (rt *nameRoute) match(rest string) (name, arg string, ok bool) {
	head := rest
	if rt.hasArg {
		i := strings.LastIndexByte(rest, '/')
		if i < 0 || i == len(rest)-1 {
			return "", "", false
		}
		head, arg = rest[:i+1], rest[i+1:]
	}
	name, ok = strings.CutSuffix(head, rt.suffix)
	if !ok || name == "" || strings.IndexByte(name, '\n') >= 0 {
		return "", "", false
	}
	return name, arg, true
}

// serve adapts a handlerFunc for a gorilla/mux route with fixed variables.
func (a *api) serve(h handlerFunc, name, arg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r, name, arg); err != nil {
			distspec.WriteError(w, err)
		}
	}
}

// serveNamed runs the handler of a name route: it checks the repository
// name and writes any error.
func (a *api) serveNamed(w http.ResponseWriter, r *http.Request, h handlerFunc, name, arg string) {
	if !distspec.ValidName(name) {
		distspec.WriteError(w, distspec.NameInvalid.WithDetail(map[string]string{"name": truncate(name)}))
		return
	}
	if err := h(w, r, name, arg); err != nil {
		distspec.WriteError(w, err)
	}
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func (a *api) base(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte("{}"))
	}
}

func notFound(w http.ResponseWriter, r *http.Request) {
	distspec.WriteError(w, distspec.Unsupported.WithStatus(http.StatusNotFound).WithMessage("no such endpoint: "+r.Method+" "+truncate(r.URL.Path)))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	distspec.WriteError(w, distspec.Unsupported.WithMessage("method "+r.Method+" not allowed on "+truncate(r.URL.Path)))
}
