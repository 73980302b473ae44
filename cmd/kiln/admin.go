package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"kiln/config"
	"kiln/storage"
)

// adminGCPath is the admin endpoint that runs a garbage collection.
const adminGCPath = "/kiln/v1/gc"

// adminHandler serves the admin API: POST /kiln/v1/gc[?dry_run=1] runs a
// garbage collection with the configured grace period and delete_untagged
// setting, and answers with its report (JSON). The collection is safe while
// the registry serves pushes; it stops (putting back whatever it had taken
// out) if the client goes away. 409 when one is already running.
// /kiln/v1/retention goes to retain, /kiln/v1/cache to cache.
func adminHandler(store *storage.Store, cfg *config.Config, logger *slog.Logger, observe gcObserver, retain, cache http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case adminRetentionPath:
			retain.ServeHTTP(w, r)
			return
		case adminCachePath:
			cache.ServeHTTP(w, r)
			return
		}
		if r.URL.Path != adminGCPath {
			adminError(w, http.StatusNotFound, "not found")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			adminError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		dryRun, ok := dryRunParam(w, r)
		if !ok {
			return
		}
		opts := storage.GCOptions{DryRun: dryRun, Grace: cfg.Storage.GC.Grace, DeleteUntagged: cfg.Storage.GC.DeleteUntagged}
		report, err := runGC(r.Context(), store, opts, logger, "api", observe)
		adminReply(w, report, err, storage.ErrGCRunning)
	})
}

// adminReply answers an admin action with its report (JSON), or 409 when
// err is busy (another run of the action is going on), or 500 for any
// other error.
func adminReply(w http.ResponseWriter, report any, err, busy error) {
	switch {
	case busy != nil && errors.Is(err, busy):
		adminError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		adminError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(report)
}

// dryRunParam reads ?dry_run=; false (after answering 400) when it is not
// a boolean.
func dryRunParam(w http.ResponseWriter, r *http.Request) (dryRun, ok bool) {
	v := r.URL.Query().Get("dry_run")
	if v == "" {
		return false, true
	}
	dryRun, err := strconv.ParseBool(v)
	if err != nil {
		adminError(w, http.StatusBadRequest, "dry_run: "+err.Error())
		return false, false
	}
	return dryRun, true
}

func adminError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
