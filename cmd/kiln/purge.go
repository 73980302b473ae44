package main

import (
	"context"
	"log/slog"
	"time"

	"kiln/storage"
)

// purgeLoop removes expired upload sessions now and then every interval,
// until ctx is done. Abandoned uploads would otherwise fill the disk.
func purgeLoop(ctx context.Context, store *storage.Store, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := store.PurgeUploads(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Error("purging expired uploads", slog.Any("err", err))
		case n > 0:
			logger.Info("purged expired uploads", slog.Int("count", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
