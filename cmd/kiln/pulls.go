package main

import (
	"context"
	"log/slog"
	"time"

	"kiln/storage"
)

// pullFlushInterval is how often noted pulls are written: a pull's time
// matters to the hour (eviction, retention), and each flush writes one
// small file per repository pulled since.
const pullFlushInterval = time.Minute

// pullFlushLoop writes the pulls noted in log every pullFlushInterval,
// and once more when ctx ends. Pull times are hints: those of requests
// still draining after that are lost, which costs eviction a little recency.
func pullFlushLoop(ctx context.Context, log *storage.PullLog, logger *slog.Logger) {
	t := time.NewTicker(pullFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := log.Flush(context.WithoutCancel(ctx)); err != nil {
				logger.Warn("writing pull times at shutdown", slog.Any("err", err))
			}
			return
		case <-t.C:
			if err := log.Flush(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("writing pull times", slog.Any("err", err))
			}
		}
	}
}
