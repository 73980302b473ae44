package buildhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"kiln/accesslog"
	"kiln/distspec"
)

// Handler serves the build API under /kiln/v1/: builds (list, one, log),
// rules with their graph (adopted images' auto rules included), manual
// triggers, and the images autorebase could adopt.
func (s *Service) Handler() http.Handler {
	r := mux.NewRouter()
	v1 := r.PathPrefix("/kiln/v1").Subrouter()
	v1.HandleFunc("/builds", s.listBuilds).Methods(http.MethodGet)
	v1.HandleFunc("/builds/{id}", s.getBuild).Methods(http.MethodGet)
	v1.HandleFunc("/builds/{id}/log", s.buildLog).Methods(http.MethodGet)
	v1.HandleFunc("/rules", s.listRules).Methods(http.MethodGet)
	// An auto rule's name holds the image's repository, slashes included.
	v1.HandleFunc("/rules/{name:.+}/trigger", s.triggerRule).Methods(http.MethodPost)
	v1.HandleFunc("/candidates", s.listCandidates).Methods(http.MethodGet)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, "no such endpoint")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// internalError answers an unexpected error like /v2/ does: the client
// gets the kind of fault, the log gets the backend's own text (paths,
// bucket names, keys) with the request's id, which the answer names.
func (s *Service) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "build API error", "method", r.Method, "path", r.URL.Path, "err", err)
	fault := distspec.StorageFault(err)
	msg := fault.Message
	if id := accesslog.RequestID(r.Context()); id != "" {
		msg += " (request id " + id + "; the server log has the details)"
	}
	apiError(w, fault.Status, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// listBuilds answers GET /kiln/v1/builds?rule=&status=&limit=&before=,
// newest first; a Link header (rel="next") points to the next page.
func (s *Service) listBuilds(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			apiError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = n
	}
	before := q.Get("before")
	if before != "" && !validBuildID(before) {
		apiError(w, http.StatusBadRequest, "before must be a build id")
		return
	}
	recs, more, err := s.records.Find(r.Context(), Query{Rule: q.Get("rule"), Status: q.Get("status"), Before: before, Limit: limit})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if recs == nil {
		recs = []*Record{}
	}
	if more {
		next := r.URL.Query()
		next.Set("limit", strconv.Itoa(limit))
		next.Set("before", recs[len(recs)-1].ID)
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	writeJSON(w, http.StatusOK, recs)
}

func (s *Service) getBuild(w http.ResponseWriter, r *http.Request) {
	rec, err := s.records.Get(r.Context(), mux.Vars(r)["id"])
	if errors.Is(err, ErrNoBuild) {
		apiError(w, http.StatusNotFound, "no such build")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// buildLog answers GET /kiln/v1/builds/{id}/log[?follow=1], streaming while
// the build runs when following.
func (s *Service) buildLog(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if _, err := s.records.Get(r.Context(), id); errors.Is(err, ErrNoBuild) {
		apiError(w, http.StatusNotFound, "no such build")
		return
	} else if err != nil {
		s.internalError(w, r, err)
		return
	}
	follow, _ := strconv.ParseBool(r.URL.Query().Get("follow"))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	s.records.FollowLog(r.Context(), id, flushWriter{w}, follow)
}

type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flushWriter) Flush()                      { http.NewResponseController(f.w).Flush() }

// ruleView is a rule as the API shows it.
type ruleView struct {
	Name       string            `json:"name"`
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile"`
	Tags       []string          `json:"tags"`
	Bases      []string          `json:"bases"`
	Args       map[string]string `json:"args,omitempty"`
	Builder    string            `json:"builder"`
	Strategy   string            `json:"strategy"`
	// Dependents are the rules built on this rule's tags.
	Dependents []string `json:"dependents"`
	// Auto marks the rule of an image adopted by autorebase.
	Auto bool `json:"auto,omitempty"`
}

func (s *Service) listRules(w http.ResponseWriter, r *http.Request) {
	out := []ruleView{}
	g := s.RuleGraph()
	for _, rule := range g.Rules() {
		v := ruleView{Name: rule.Name, Context: rule.Context, Dockerfile: rule.Dockerfile, Args: rule.Args,
			Builder: rule.Builder, Strategy: rule.Strategy, Tags: []string{}, Bases: []string{}, Dependents: []string{},
			Auto: rule.Auto}
		seen := map[string]bool{}
		for _, t := range rule.Tags {
			v.Tags = append(v.Tags, t.String())
			for _, d := range g.Dependents(t) {
				if !seen[d.Name] {
					seen[d.Name] = true
					v.Dependents = append(v.Dependents, d.Name)
				}
			}
		}
		for _, b := range rule.Bases {
			v.Bases = append(v.Bases, b.String())
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) triggerRule(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	if s.RuleGraph().Rule(name) == nil {
		apiError(w, http.StatusNotFound, "no such rule")
		return
	}
	force, err := strconv.ParseBool(r.URL.Query().Get("force"))
	if err != nil && r.URL.Query().Get("force") != "" {
		apiError(w, http.StatusBadRequest, "force must be true or false")
		return
	}
	job, err := s.Trigger(name, force)
	if errors.Is(err, ErrQueueStopped) {
		apiError(w, http.StatusServiceUnavailable, "kiln is shutting down; try again")
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": job.ID, "rule": name})
}

// listCandidates answers GET /kiln/v1/candidates: the images autorebase
// could adopt (see FindCandidates).
func (s *Service) listCandidates(w http.ResponseWriter, r *http.Request) {
	out, err := FindCandidates(r.Context(), s.opts.Store)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
