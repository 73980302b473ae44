package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"kiln/buildhook"
	"kiln/config"
	"kiln/metrics"
	"kiln/storage"
	"kiln/ui"
)

// webUI is the web pages on the store and the build service. Logging in
// is offered only when kiln has logins.
// The storage page shows the counts of the store metrics' scans.
func webUI(cfg *config.Config, store *storage.Store, builds *buildhook.Service, m *metrics.Metrics, cache *cacheKeeper, logger *slog.Logger) http.Handler {
	opts := ui.Options{Catalog: store, Builds: ui.ServiceBuilds{Service: builds}, Usage: m.StoredUsage, Logger: logger}
	if cache != nil {
		opts.Cache = cache.page
	}
	if cfg.Auth.Enabled() {
		opts.Challenge = fmt.Sprintf("Basic realm=%q", cfg.Auth.Realm)
	}
	return ui.New(opts)
}

// sameOrigin refuses writes a browser sends from another site. Once a
// browser has logged in to the pages it sends the Basic credentials with
// every request to kiln, so without this any site could make it trigger
// builds or delete images (CSRF). Clients that are not browsers send
// neither Origin nor Sec-Fetch-Site and pass.
func sameOrigin(next http.Handler) http.Handler {
	return http.NewCrossOriginProtection().Handler(next)
}
