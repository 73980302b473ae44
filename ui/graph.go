package ui

import (
	"net/http"
	"strings"
	"time"

	"kiln/buildhook"
)

// lastBuildScan is how many of the newest builds the graph reads for
// its nodes' last build: one pass, not one per rule.
const lastBuildScan = 2000

// graphNode is a box of the drawing: a rule, or an image no rule builds.
type graphNode struct {
	Name, Label string
	Rule        bool
	Auto        bool
	Link        string
	Status      string // of the last build, "" for none or an image
	When        time.Time
	X, Y        int
}

type graphData struct {
	Nodes         []graphNode
	Edges         []edgePath
	Width, Height int
	// NodeWidth and NodeHeight are layout's, for the boxes.
	NodeWidth, NodeHeight int
	Rules                 []Rule
}

// graph draws rules and adopted images base to derived, as SVG laid out
// here, with each rule's last build.
func (h *handler) graph(w http.ResponseWriter, r *http.Request) {
	if h.opts.Builds == nil {
		h.fail(w, r, http.StatusNotFound, "builds are not configured")
		return
	}
	recent, _, err := h.opts.Builds.Find(r.Context(), buildhook.Query{Limit: lastBuildScan})
	if err != nil {
		h.internal(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "graph", "Rebuild graph", "graph", buildGraph(h.opts.Builds.Rules(), recent))
}

// buildGraph makes the drawing of rules: an edge from a rule (or a
// plain image) to each rule built on one of its tags.
func buildGraph(rules []Rule, recent []*buildhook.Record) graphData {
	last := map[string]*buildhook.Record{}
	for _, rec := range recent { // newest first
		if last[rec.Rule] == nil {
			last[rec.Rule] = rec
		}
	}
	d := graphData{Rules: rules, NodeWidth: nodeWidth, NodeHeight: nodeHeight}
	producer := map[string]int{}
	for i, r := range rules {
		n := graphNode{Name: r.Name, Label: label(r.Name), Rule: true, Auto: r.Auto, Link: rulesBuildsLink(r.Name)}
		if rec := last[r.Name]; rec != nil {
			n.Status, n.When = rec.Status, rec.Queued
		}
		d.Nodes = append(d.Nodes, n)
		for _, t := range r.Tags {
			producer[t] = i
		}
	}
	dag := make([]dagNode, len(rules))
	image := map[string]int{}
	for i, r := range rules {
		for _, b := range r.Bases {
			from, ok := producer[b]
			if !ok {
				if from, ok = image[b]; !ok {
					from = len(d.Nodes)
					image[b] = from
					repo, _, _ := strings.Cut(b, ":")
					d.Nodes = append(d.Nodes, graphNode{Name: b, Label: label(b), Link: repoLink(repo)})
					dag = append(dag, dagNode{})
				}
			}
			dag[from].Edges = append(dag[from].Edges, i)
		}
	}
	p := layout(dag)
	for i := range d.Nodes {
		d.Nodes[i].X, d.Nodes[i].Y = p.X[i], p.Y[i]
	}
	d.Edges, d.Width, d.Height = p.Paths, p.Width, p.Height
	return d
}

// label fits a name in a node; the full name is the node's tooltip.
func label(s string) string {
	const maxRunes = 28
	if r := []rune(s); len(r) > maxRunes {
		return string(r[:maxRunes-1]) + "…"
	}
	return s
}
