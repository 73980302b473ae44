package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"kiln/distspec"
	"kiln/storage"
)

type repositoryData struct {
	Host   string // as the browser reached kiln, for the pull command
	Name   string
	Images []image
	Pager  pager
}

// repository is one repository's page of tags, each with its digest,
// size, platforms, creation time and base.
func (h *handler) repository(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if !distspec.ValidName(name) { // the store trusts its callers with paths
		h.fail(w, r, http.StatusNotFound, "no such repository")
		return
	}
	tags, err := h.opts.Catalog.Tags(r.Context(), name)
	if errors.Is(err, storage.ErrNameUnknown) {
		h.fail(w, r, http.StatusNotFound, "no such repository")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	from, to, p := pageOf(r.URL.Query(), len(tags), func(page int) string {
		return repoLink(name) + "&" + url.Values{"page": {strconv.Itoa(page)}}.Encode()
	})
	d := repositoryData{Host: r.Host, Name: name, Pager: p}
	for _, t := range tags[from:to] {
		d.Images = append(d.Images, describe(r.Context(), h.opts.Catalog, name, t))
	}
	h.render(w, r, http.StatusOK, "repository", name, "repos", d)
}
