package ui

import (
	"net/http"
	"net/url"
	"slices"

	"kiln/buildhook"
)

// statuses are the filters the builds page offers.
var statuses = []string{buildhook.StatusQueued, buildhook.StatusRunning, buildhook.StatusSucceeded, buildhook.StatusFailed, buildhook.StatusUnchanged}

type buildsData struct {
	Rule, Status string
	Rules        []string // for the filter
	Statuses     []string
	Known        bool // Rule names a rule: offer its trigger
	Builds       []*buildhook.Record
	Next         string // the older page, "" at the end
}

// builds lists builds, newest first, filtered by rule and status, a page
// at a time (?before= the last id of the previous page).
func (h *handler) builds(w http.ResponseWriter, r *http.Request) {
	if h.opts.Builds == nil {
		h.fail(w, r, http.StatusNotFound, "builds are not configured")
		return
	}
	q := r.URL.Query()
	d := buildsData{Rule: q.Get("rule"), Status: q.Get("status"), Statuses: statuses}
	for _, rule := range h.opts.Builds.Rules() {
		d.Rules = append(d.Rules, rule.Name)
	}
	d.Known = slices.Contains(d.Rules, d.Rule)
	recs, more, err := h.opts.Builds.Find(r.Context(), buildhook.Query{Rule: d.Rule, Status: d.Status, Before: q.Get("before"), Limit: perPage})
	if err != nil {
		h.internal(w, r, err)
		return
	}
	d.Builds = recs
	if more && len(recs) > 0 {
		v := url.Values{"before": {recs[len(recs)-1].ID}}
		if d.Rule != "" {
			v.Set("rule", d.Rule)
		}
		if d.Status != "" {
			v.Set("status", d.Status)
		}
		d.Next = Prefix + "builds?" + v.Encode()
	}
	h.render(w, r, http.StatusOK, "builds", "Builds", "builds", d)
}

func buildLink(id string) string { return Prefix + "build?" + url.Values{"id": {id}}.Encode() }

func rulesBuildsLink(rule string) string {
	return Prefix + "builds?" + url.Values{"rule": {rule}}.Encode()
}
