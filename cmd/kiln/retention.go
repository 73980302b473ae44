package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"kiln/buildhook"
	"kiln/config"
	"kiln/metrics"
	"kiln/retention"
	"kiln/storage"
)

// adminRetentionPath is the admin endpoint that runs the retention policies.
const adminRetentionPath = "/kiln/v1/retention"

// newRetention returns the runner of cfg's retention policies on store.
// Tags the build service's rules (adopted images' included) produce or
// build on are protected, builds' staging tags ignored; pulls says when
// manifests were last pulled.
func newRetention(cfg config.Retention, store *storage.Store, pulls *storage.PullLog, builds *buildhook.Service, logger *slog.Logger) *retention.Runner {
	policies := make([]retention.Policy, 0, len(cfg.Policies))
	for _, p := range cfg.Policies {
		policies = append(policies, retention.Policy{Repositories: p.Repositories, Tags: p.Tags, KeepLast: p.KeepLast, MaxUnused: p.MaxUnused, UntaggedAfter: p.UntaggedAfter})
	}
	protected := func() []retention.Ref {
		var refs []retention.Ref
		for _, r := range builds.ProtectedTags() {
			refs = append(refs, retention.Ref{Repo: r.Repo, Tag: r.Tag})
		}
		return refs
	}
	return retention.New(retention.Options{Store: store, Policies: policies, Pulls: pulls, Protected: protected, Transient: buildhook.IsStagingTag, Now: time.Now, Logger: logger})
}

// retentionObserver is told of every retention run (serve feeds the
// metrics with it); nil means nobody listens.
type retentionObserver func(*retention.Report, error)

// retentionMetrics records runs that were not dry runs, failed or not.
func retentionMetrics(m *metrics.Metrics) retentionObserver {
	record := m.Retention()
	return func(r *retention.Report, err error) {
		if !r.DryRun {
			record(r.TagsDeleted, r.ManifestsDeleted, err != nil || r.Failed > 0, r.Started.Add(r.Duration))
		}
	}
}

// runRetention runs the policies once and logs the result in one line
// (the runner logs each deletion).
func runRetention(ctx context.Context, runner *retention.Runner, dryRun bool, logger *slog.Logger, trigger string, observe retentionObserver) (*retention.Report, error) {
	log := runLogger(ctx, logger, trigger, dryRun)
	r, err := runner.Run(ctx, dryRun)
	if observe != nil && r != nil {
		observe(r, err)
	}
	switch {
	case errors.Is(err, retention.ErrRunning):
		log.Info("retention run skipped: another one is running")
	case err != nil && ctx.Err() != nil:
		log.Info("retention run stopped", slog.Any("err", err))
	case err != nil:
		log.Error("retention run failed", slog.Any("err", err))
	default:
		tags, manifests := r.TagsDeleted, r.ManifestsDeleted
		if r.DryRun {
			tags, manifests = len(r.Tags), len(r.Manifests)
		}
		level := slog.LevelInfo
		if r.Failed > 0 {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "retention: "+r.String(),
			slog.Int("repositories", r.Repositories),
			slog.Int("tags", tags),
			slog.Int("manifests", manifests),
			slog.Int("protected", len(r.Protected)),
			slog.Int("failed", r.Failed),
			slog.Duration("duration", r.Duration))
	}
	return r, err
}

// retentionLoop runs the policies every interval until ctx is done; a zero
// interval or no policy turns it off. Like garbage collection, the first
// run is one interval after start.
func retentionLoop(ctx context.Context, runner *retention.Runner, cfg config.Retention, logger *slog.Logger, observe retentionObserver) {
	if cfg.Interval <= 0 || len(cfg.Policies) == 0 {
		return
	}
	logger.Info("retention scheduled", slog.Duration("interval", cfg.Interval), slog.Int("policies", len(cfg.Policies)))
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		runRetention(ctx, runner, false, logger, "schedule", observe)
	}
}

// retentionHandler serves POST /kiln/v1/retention[?dry_run=1]: one run of
// the policies, answered with its report (JSON). 409 when one is already
// running.
func retentionHandler(runner *retention.Runner, logger *slog.Logger, observe retentionObserver) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			adminError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		dryRun, ok := dryRunParam(w, r)
		if !ok {
			return
		}
		report, err := runRetention(r.Context(), runner, dryRun, logger, "api", observe)
		adminReply(w, report, err, retention.ErrRunning)
	})
}
