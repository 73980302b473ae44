package ui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

type repoRow struct {
	Name string
	Link string
	Tags int // -1: could not list
}

type repositoriesData struct {
	Filter string
	Repos  []repoRow
	Pager  pager
}

// repositories is the front page: one page of repositories with their
// tag counts. Only the page's repositories have their tags listed, and
// no manifest is read, so it costs the same with a thousand of them.
func (h *handler) repositories(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("login") {
		h.login(w, r)
		return
	}
	names, err := h.opts.Catalog.Repositories(r.Context())
	if err != nil {
		h.internal(w, r, err)
		return
	}
	filter := strings.TrimSpace(r.URL.Query().Get("q"))
	if filter != "" {
		kept := names[:0:0]
		for _, n := range names {
			if strings.Contains(n, filter) {
				kept = append(kept, n)
			}
		}
		names = kept
	}
	from, to, p := pageOf(r.URL.Query(), len(names), func(page int) string {
		v := url.Values{"page": {strconv.Itoa(page)}}
		if filter != "" {
			v.Set("q", filter)
		}
		return Root + "?" + v.Encode()
	})
	d := repositoriesData{Filter: filter, Pager: p}
	for _, n := range names[from:to] {
		row := repoRow{Name: n, Link: repoLink(n), Tags: -1}
		if tags, err := h.opts.Catalog.Tags(r.Context(), n); err == nil {
			row.Tags = len(tags)
		}
		d.Repos = append(d.Repos, row)
	}
	h.render(w, r, http.StatusOK, "repositories", "Repositories", "repos", d)
}

func repoLink(name string) string { return Prefix + "repo?" + url.Values{"name": {name}}.Encode() }
