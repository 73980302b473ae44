package registry

import (
	"net/http"

	"github.com/gorilla/mux"

	"kiln/blobs"
	"kiln/registry/errcode"
	"kiln/storage"
)

// api holds what every handler needs.
type api struct {
	store *storage.Store
	blobs *blobs.Handler
	opts  Options
}

// handlerFunc is a handler that reports failure as an error, written by
// serve in the spec's JSON form.
type handlerFunc func(w http.ResponseWriter, r *http.Request, name string) error

func newRouter(store *storage.Store, opts Options) http.Handler {
	a := &api{
		store: store,
		blobs: &blobs.Handler{Store: store, DeleteEnabled: opts.DeleteEnabled, Redirect: opts.RedirectBlobs, Logger: opts.Logger},
		opts:  opts,
	}
	r := mux.NewRouter()
	// Names are validated by the handlers, which answer NAME_INVALID; a
	// cleaned path would turn "../x" into a redirect instead.
	r.SkipClean(true)
	r.NotFoundHandler = http.HandlerFunc(notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)

	v2 := r.PathPrefix("/v2").Subrouter()
	v2.HandleFunc("/", a.base).Methods(http.MethodGet, http.MethodHead)
	v2.HandleFunc("/_catalog", a.serve(a.catalog, false)).Methods(http.MethodGet)
	v2.HandleFunc("/{name:.+}/tags/list", a.serve(a.tags, true)).Methods(http.MethodGet)
	v2.HandleFunc("/{name:.+}/referrers/{digest}", a.serve(a.referrers, true)).Methods(http.MethodGet)
	v2.HandleFunc("/{name:.+}/manifests/{reference}", a.serve(a.getManifest, true)).Methods(http.MethodGet, http.MethodHead)
	v2.HandleFunc("/{name:.+}/manifests/{reference}", a.serve(a.putManifest, true)).Methods(http.MethodPut)
	v2.HandleFunc("/{name:.+}/manifests/{reference}", a.serve(a.deleteManifest, true)).Methods(http.MethodDelete)
	v2.HandleFunc("/{name:.+}/blobs/uploads/", a.serve(a.startUpload, true)).Methods(http.MethodPost)
	v2.HandleFunc("/{name:.+}/blobs/uploads", a.serve(a.startUpload, true)).Methods(http.MethodPost)
	v2.HandleFunc("/{name:.+}/blobs/uploads/{uuid}", a.serve(a.upload, true)).Methods(http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete)
	v2.HandleFunc("/{name:.+}/blobs/{digest}", a.serve(a.blob, true)).Methods(http.MethodGet, http.MethodHead, http.MethodDelete)
	return withAPIVersion(r)
}

// withAPIVersion marks every answer as the registry v2 API, errors included.
func withAPIVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		next.ServeHTTP(w, r)
	})
}

// serve adapts a handlerFunc: it checks the repository name when the route
// has one and writes any error.
func (a *api) serve(h handlerFunc, named bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var name string
		if named {
			name = mux.Vars(r)["name"]
			if !validName(name) {
				errcode.Write(w, errcode.NameInvalid.WithDetail(map[string]string{"name": truncate(name)}))
				return
			}
		}
		if err := h(w, r, name); err != nil {
			errcode.Write(w, err)
		}
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
	errcode.Write(w, errcode.Unsupported.WithStatus(http.StatusNotFound).WithMessage("no such endpoint: "+r.Method+" "+truncate(r.URL.Path)))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	errcode.Write(w, errcode.Unsupported.WithMessage("method "+r.Method+" not allowed on "+truncate(r.URL.Path)))
}
