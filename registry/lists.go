package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"kiln/distspec"
	"kiln/storage"
)

// page cuts a sorted list after last and to at most n entries (n < 0: no
// limit), and says whether more entries follow.
func page(all []string, n int, last string) ([]string, bool) {
	start := 0
	if last != "" {
		start = sort.SearchStrings(all, last)
		if start < len(all) && all[start] == last {
			start++
		}
	}
	rest := all[start:]
	if n >= 0 && len(rest) > n {
		return rest[:n], true
	}
	return rest, false
}

// pagination reads the n and last query parameters.
func pagination(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	n = -1
	if s := q.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, "", distspec.Unsupported.WithStatus(http.StatusBadRequest).WithMessage("n must be a non-negative integer")
		}
	}
	return n, q.Get("last"), nil
}

// writePage sends a JSON list and, when it was cut, a Link to the rest.
func writePage(w http.ResponseWriter, path string, entries []string, n int, more bool, body any) {
	if more && len(entries) > 0 {
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {entries[len(entries)-1]}}
		w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
	}
	writeJSON(w, "application/json", body)
}

func writeJSON(w http.ResponseWriter, contentType string, body any) {
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (a *api) tags(w http.ResponseWriter, r *http.Request, name, _ string) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	all, err := a.store.Tags(r.Context(), name)
	if errors.Is(err, storage.ErrNameUnknown) {
		return distspec.NameUnknown.WithDetail(map[string]string{"name": name})
	}
	if err != nil {
		return a.internal(r, err)
	}
	tags, more := page(all, n, last)
	writePage(w, "/v2/"+name+"/tags/list", tags, n, more, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
	return nil
}

func (a *api) catalog(w http.ResponseWriter, r *http.Request, _, _ string) error {
	n, last, err := pagination(r)
	if err != nil {
		return err
	}
	all, err := a.store.Repositories(r.Context())
	if err != nil {
		return a.internal(r, err)
	}
	repos, more := page(all, n, last)
	writePage(w, "/v2/_catalog", repos, n, more, struct {
		Repositories []string `json:"repositories"`
	}{repos})
	return nil
}
