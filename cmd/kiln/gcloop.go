package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"kiln/accesslog"
	"kiln/config"
	"kiln/storage"
)

// gcLoop collects garbage every c.Interval until ctx is done; a zero
// interval turns it off. The first collection runs one interval after
// start, not at start: a crash loop must not turn into a collection loop.
func gcLoop(ctx context.Context, store *storage.Store, c config.GC, logger *slog.Logger, observe gcObserver) {
	if c.Interval <= 0 {
		return
	}
	logger.Info("garbage collection scheduled", slog.Duration("interval", c.Interval), slog.Duration("grace", c.Grace), slog.Bool("delete_untagged", c.DeleteUntagged))
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		runGC(ctx, store, storage.GCOptions{Grace: c.Grace, DeleteUntagged: c.DeleteUntagged}, logger, "schedule", observe)
	}
}

// gcObserver is told of every collection that ran (serve feeds the
// metrics with it); nil means nobody listens.
type gcObserver func(*storage.GCReport, error)

// runGC runs one collection, logging its progress (phase starts and ends,
// and every 10 seconds in between) and its result.
func runGC(ctx context.Context, store *storage.Store, opts storage.GCOptions, logger *slog.Logger, trigger string, observe gcObserver) (*storage.GCReport, error) {
	log := runLogger(ctx, logger, trigger, opts.DryRun)
	progress := gcProgressPrinter(logWriter{log}, 10*time.Second)
	r, err := store.GC(ctx, opts, progress)
	if observe != nil && !errors.Is(err, storage.ErrGCRunning) {
		observe(r, err)
	}
	switch {
	case errors.Is(err, storage.ErrGCRunning):
		log.Info("garbage collection skipped: another one is running")
	case err != nil && ctx.Err() != nil:
		log.Info("garbage collection stopped", slog.Any("err", err))
	case err != nil:
		log.Error("garbage collection failed", slog.Any("err", err))
	default:
		log.Info(gcSummary(r),
			slog.Int("manifests_marked", r.ManifestsMarked),
			slog.Int("blobs_marked", r.BlobsMarked),
			slog.Int("manifests_swept", r.ManifestsSwept),
			slog.Int("blobs_swept", r.BlobsSwept),
			slog.Int64("bytes_freed", r.BytesFreed),
			slog.Int("claimed_back", r.BlobsRestored+r.ManifestsRestored),
			slog.Duration("duration", r.Duration))
	}
	return r, err
}

// runLogger is the logger of one run of a maintenance task (GC,
// retention): what started it, whether it is a dry run, and the request
// id when an API call did, also on lines not logged with ctx (progress).
func runLogger(ctx context.Context, logger *slog.Logger, trigger string, dryRun bool) *slog.Logger {
	log := logger.With(slog.String("trigger", trigger), slog.Bool("dry_run", dryRun))
	if id := accesslog.RequestID(ctx); id != "" {
		log = log.With(slog.String("request_id", id))
	}
	return log
}

// logWriter logs each line written to it at info level.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && msg[len(msg)-1] == '\n' {
		msg = msg[:len(msg)-1]
	}
	w.l.Info(msg)
	return len(p), nil
}
