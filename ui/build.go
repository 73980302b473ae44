package ui

import (
	"errors"
	"net/http"

	"kiln/buildhook"
)

// build is one build's record and its log; the page's script follows the
// log from /kiln/v1/builds/ID/log?follow=1 while the build runs.
func (h *handler) build(w http.ResponseWriter, r *http.Request) {
	if h.opts.Builds == nil {
		h.fail(w, r, http.StatusNotFound, "builds are not configured")
		return
	}
	rec, err := h.opts.Builds.Get(r.Context(), r.URL.Query().Get("id"))
	if errors.Is(err, buildhook.ErrNoBuild) {
		h.fail(w, r, http.StatusNotFound, "no such build")
		return
	}
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "build", "Build "+rec.ID, "builds", rec)
}
