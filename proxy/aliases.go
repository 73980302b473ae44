package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"kiln/distspec"
)

// Aliases serves reads of every name of a cached upstream repository from
// the one repository the cache keeps it in (see locate): it rewrites the
// name in the path of GETs and HEADs of tags, manifests, blobs and
// referrers before next, the registry, sees it. Tag lists still name the
// repository asked for. Writes keep their name, so that CheckPush judges
// the name pushed to; deletes too, so that they name the repository the
// catalog lists. A nil p returns next.
func (p *Proxy) Aliases(next http.Handler) http.Handler {
	if p == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		repo, suffix, ok := splitNamePath(r.URL.Path)
		if !ok || !distspec.ValidName(repo) {
			next.ServeHTTP(w, r)
			return
		}
		loc, err := p.locate(r.Context(), repo)
		if err != nil || loc.stored == repo {
			// A store failure is the registry's to report, on its own
			// lookups.
			next.ServeHTTP(w, r)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = "/v2/"+loc.stored+suffix, ""
		r2.URL = &u
		if suffix != tagsSuffix {
			next.ServeHTTP(w, r2)
			return
		}
		tl := &tagList{header: http.Header{}}
		next.ServeHTTP(tl, r2)
		tl.send(w, repo, loc.stored)
	})
}

const tagsSuffix = "/tags/list"

// splitNamePath splits a /v2/<name>/... path of a read into the name and
// what follows it, as the registry's routes do: tags/list, or a
// manifest, blob or referrers argument in the last segment. An upload's
// path is none of these.
func splitNamePath(path string) (name, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", "", false
	}
	if name, ok := strings.CutSuffix(rest, tagsSuffix); ok {
		return name, tagsSuffix, name != ""
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || i == len(rest)-1 {
		return "", "", false
	}
	j := strings.LastIndexByte(rest[:i], '/')
	if j <= 0 {
		return "", "", false
	}
	switch rest[j+1 : i] {
	case "manifests", "blobs", "referrers":
		return rest[:j], rest[j:], true
	}
	return "", "", false
}

// tagList holds a tag list answer so that it can name the repository the
// client asked for, not the one the cache keeps it in.
type tagList struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (t *tagList) Header() http.Header { return t.header }
func (t *tagList) WriteHeader(code int) {
	if t.status == 0 {
		t.status = code
	}
}
func (t *tagList) Write(b []byte) (int, error) {
	t.WriteHeader(http.StatusOK)
	return t.body.Write(b)
}

// send writes the held answer to w, with stored's name in its body and
// its Link to the next page replaced by asked.
func (t *tagList) send(w http.ResponseWriter, asked, stored string) {
	body := t.body.Bytes()
	if t.status == http.StatusOK || t.status == 0 {
		var list map[string]any
		if json.Unmarshal(body, &list) == nil && list["name"] == stored {
			list["name"] = asked
			if b, err := json.Marshal(list); err == nil {
				body = b
				t.header.Set("Content-Length", strconv.Itoa(len(body)))
			}
		}
		if link := t.header.Get("Link"); link != "" {
			t.header.Set("Link", strings.Replace(link, "/v2/"+stored+tagsSuffix, "/v2/"+asked+tagsSuffix, 1))
		}
	}
	for k, v := range t.header {
		w.Header()[k] = v
	}
	if t.status != 0 {
		w.WriteHeader(t.status)
	}
	w.Write(body)
}
