package registry

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/gorilla/mux"
)

// TestNameRoutesMatchMux checks that the string matching of the name
// routes picks the same route, name and argument (or the same 404/405) as
// the gorilla/mux {name:.+} routes it replaced.
func TestNameRoutesMatchMux(t *testing.T) {
	t.Parallel()
	ref := mux.NewRouter()
	ref.SkipClean(true)
	v2 := ref.PathPrefix("/v2").Subrouter()
	route := func(tmpl, id string, methods ...string) {
		v2.HandleFunc(tmpl, func(w http.ResponseWriter, r *http.Request) {
			v := mux.Vars(r)
			arg := v["reference"] + v["digest"] + v["uuid"]
			w.Write([]byte(id + "|" + v["name"] + "|" + arg))
		}).Methods(methods...)
	}
	route("/{name:.+}/tags/list", "tags", "GET")
	route("/{name:.+}/referrers/{digest}", "referrers", "GET")
	route("/{name:.+}/manifests/{reference}", "manifest", "GET", "HEAD", "PUT", "DELETE")
	route("/{name:.+}/blobs/uploads/", "start", "POST")
	route("/{name:.+}/blobs/uploads", "start", "POST")
	route("/{name:.+}/blobs/uploads/{uuid}", "upload", "GET", "PATCH", "PUT", "DELETE")
	route("/{name:.+}/blobs/{digest}", "blob", "GET", "HEAD", "DELETE")

	a := newRouter(nil, Options{}).(*api)
	ids := []string{"tags", "referrers", "manifest", "start", "start", "upload", "blob"}
	paths := []string{
		"/v2/a/tags/list", "/v2/a/b/tags/list", "/v2//tags/list", "/v2/tags/list", "/v2/a/tags/list/",
		"/v2/a/manifests/v1", "/v2/a/b/c/manifests/sha256:x", "/v2/a/manifests/", "/v2/a/manifests",
		"/v2/a/manifests/b/manifests/c", "/v2/manifests/x", "/v2//manifests/x", "/v2///manifests/x",
		"/v2/a\n/manifests/x", "/v2/a/manifests/x\n", "/v2/a/referrers/tags/list", "/v2/a/referrers/d",
		"/v2/a/blobs/uploads/", "/v2/a/blobs/uploads", "/v2/a/blobs/uploads/u", "/v2/a/blobs/uploads/u/",
		"/v2/a/blobs/d", "/v2/a/blobs/uploads/blobs/d", "/v2/a/manifests/blobs/x", "/v2/a/blobs/",
		"/v2/../x/manifests/y", "/v2/a/../manifests/y", "/v2/", "/v2/_catalog", "/v2", "/v2x/a/manifests/b",
		"/x/a/manifests/b", "/v2/a/b",
	}
	methods := []string{"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"}
	for _, p := range paths {
		for _, m := range methods {
			req := &http.Request{Method: m, URL: mustURL(t, p), Header: http.Header{}}
			want := httptest.NewRecorder()
			ref.ServeHTTP(want, req)
			wantBody := want.Body.String()
			if want.Code != 200 {
				wantBody = ""
			}
			// The dispatcher must claim exactly what mux served with a
			// name route (the rest falls through to mux as before).
			got, gotCode := "", 0
			if rest, ok := cutV2(p); ok {
				for i, rt := range a.routes {
					if name, arg, ok := rt.match(rest); ok && rt.handlers[m] != nil {
						got, gotCode = ids[i]+"|"+name+"|"+arg, 200
						break
					}
				}
			}
			if (want.Code == 200 || gotCode == 200) && (got != wantBody || gotCode != want.Code) {
				t.Errorf("%s %q: got %d %q, mux %d %q", m, p, gotCode, got, want.Code, wantBody)
			}
		}
	}
}

func cutV2(p string) (string, bool) {
	if len(p) >= 4 && p[:4] == "/v2/" {
		return p[4:], true
	}
	return "", false
}

func mustURL(t *testing.T, p string) *url.URL {
	t.Helper()
	return &url.URL{Path: p}
}
