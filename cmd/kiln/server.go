package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"kiln/accesslog"
	"kiln/buildhook"
	"kiln/config"
	"kiln/limits"
	"kiln/metrics"
	"kiln/registry"
	"kiln/storage"
)

// runServe serves the registry described by cfg until ctx is cancelled,
// then drains in-flight requests for at most http.shutdown_timeout and
// returns nil. If ready is not nil it receives the bound address once the
// listener is up (so callers can use port 0); give it room for one value.
func runServe(ctx context.Context, cfg *config.Config, logger *slog.Logger, ready chan<- string) error {
	node, err := openCluster(ctx, cfg, logger) // nil without cluster.postgres
	if err != nil {
		return err
	}
	defer node.close()
	sec, err := newSecurityWithKey(cfg, logger, node.key()) // bad TLS or htpasswd files stop here
	if err != nil {
		return err
	}
	defer sec.close()
	// The store is built with its listener; the build service, built
	// later on the store, attaches to it.
	moves := new(buildhook.TagMoves)
	store, dataRoot, err := openStore(cfg, moves.TagMoved)
	if err != nil {
		return err
	}
	// Another instance may collect this store: reads must keep links
	// younger than its grace period even if this process never collects.
	store.SetGCGrace(cfg.Storage.GC.Grace)

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w (another process holds the port; choose another with --addr or %s)", err, config.EnvAddr)
		}
		return err
	}

	m := metrics.New()
	observeGC := func(r *storage.GCReport, err error) {
		switch {
		case err != nil:
			m.GCRun(0, 0, 0, err)
		case !r.DryRun:
			m.GCRun(r.BlobsSwept, r.BytesFreed, r.BlobsMarked, nil)
		}
	}
	mirror, upstream, err := newUpstream(cfg, store, logger)
	if err != nil {
		ln.Close()
		return err
	}
	if err := node.join(ctx, cfg, ln.Addr().String()); err != nil {
		ln.Close()
		return err
	}
	registerProxyMetrics(m, mirror)
	hooks, err := newNotifier(ctx, cfg, store, node, m, ln.Addr().String(), logger)
	if err != nil {
		ln.Close()
		return err
	}
	if mirror != nil {
		mirror.SetNotifier(hooks)
	}
	registerStoreMetrics(m, store)
	pulls := storage.NewPullLog(store)
	api := registry.New(store, registry.Options{
		Pulls:         pulls,
		DeleteEnabled: cfg.Storage.Delete.Enabled,
		RedirectBlobs: cfg.Storage.Redirect,
		Upstream:      upstream,
		Notify:        hooks,
		Logger:        logger,

		MaxManifestSize:      cfg.Limits.MaxManifestSize,
		MaxBlobSize:          cfg.Limits.MaxBlobSize,
		MaxConcurrentUploads: cfg.Limits.MaxConcurrentUploads,
	})
	work, err := openWorkDir(cfg.Buildhook.WorkDir, logger)
	if err != nil {
		ln.Close()
		return fmt.Errorf("buildhook.work_dir: %w", err)
	}
	defer closeWorkDir(work, logger)
	// Builds stop with ctx, before the HTTP drain: they push to kiln itself.
	buildCtx, stopBuilds := context.WithCancel(ctx)
	defer stopBuilds()
	builds, err := startBuildhook(buildCtx, cfg, store, moves, ln.Addr().String(), work.Path, logger, m.BuildDone, buildEvents(hooks, logger), sec.self, node.builds(cfg))
	if err != nil {
		ln.Close()
		return err
	}
	m.BuildQueue(builds.Counts)
	defer builds.Wait()
	cache := &cacheKeeper{store: store, pulls: pulls, cfg: cfg.Cache, gc: cfg.Storage.GC, logger: logger, record: m.Cache(), observeGC: observeGC, now: time.Now, fills: make(chan struct{}, 1)}
	if cfg.Storage.Driver == config.DriverFilesystem {
		cache.root = dataRoot
	}
	var pageCache *cacheKeeper // the storage page shows the cache only when there is one
	if mirror != nil {
		mirror.SetFillObserver(cache.filled)
		pageCache = cache
	}
	retain := newRetention(cfg.Retention, store, pulls, builds, logger)
	observeRetention := retentionMetrics(m)
	go watchUpstreamBases(buildCtx, node, mirror, builds)
	srv := &http.Server{
		// Stall goes outermost: it relies on the wrappers inside passing
		// ReadFrom through, so blob GETs keep sendfile.
		Handler: limits.Stall(accesslog.New(
			m.TrackUploads(opsRoutes(authenticated(sec, sameOrigin(routes(mirror.Aliases(api), builds.Handler(), adminHandler(store, cfg, logger, observeGC, retentionHandler(retain, logger, observeRetention), cache.handler()), webUI(cfg, store, builds, m, pageCache, logger)))), store, m)),
			accesslog.Options{Logger: logger, Observe: m.Observe, Lines: accessLines(cfg.Log)}), cfg.HTTP.StallTimeout),
		// Slow or stalled clients must not hold connections forever, but
		// there is no overall read/write timeout: blob transfers can take
		// hours. Stall cuts transfers that stop moving instead.
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Request contexts deliberately do not derive from ctx: cancelling ctx
	// starts a graceful drain, it must not abort in-flight uploads.

	// The purge loop ends with ctx, or with stopPurge if Serve fails; either
	// way runServe waits for it so nothing touches the store afterwards.
	purgeCtx, stopPurge := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { purgeLoop(purgeCtx, store, cfg.Storage.Uploads.PurgeInterval, logger) })
	// In a cluster the schedules run on their task's leader only.
	wg.Go(func() {
		node.lead(purgeCtx, taskGC, cfg.Storage.GC.Interval > 0, func(ctx context.Context) { gcLoop(ctx, store, cfg.Storage.GC, logger, observeGC) })
	})
	wg.Go(func() { pullFlushLoop(purgeCtx, pulls, logger) })
	wg.Go(func() { cache.loop(purgeCtx) })
	wg.Go(func() { node.lead(purgeCtx, taskCacheCheck, cfg.Cache.Enabled(), cache.checkLoop) })
	wg.Go(func() { hooks.Run(purgeCtx) })
	wg.Go(func() {
		node.lead(purgeCtx, taskRetention, cfg.Retention.Interval > 0 && len(cfg.Retention.Policies) > 0, func(ctx context.Context) {
			retentionLoop(ctx, retain, cfg.Retention, logger, observeRetention)
		})
	})
	wg.Go(func() { node.housekeep(purgeCtx) })
	defer wg.Wait()
	defer stopPurge()

	serveErr := make(chan error, 1)
	go func() { serveErr <- sec.serve(srv, ln) }()

	addr := ln.Addr().String()
	logger.Info("kiln listening",
		slog.String("addr", addr),
		slog.String("driver", cfg.Storage.Driver),
		slog.String("data", dataRoot),
		slog.String("config", cfg.Source),
		slog.String("version", versionString()),
	)
	if ready != nil {
		select {
		case ready <- addr:
		case <-ctx.Done():
		}
	}

	select {
	case err := <-serveErr:
		// Serve only returns on its own when the listener fails.
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", slog.Duration("timeout", cfg.HTTP.ShutdownTimeout))
	stopBuilds()
	builds.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("requests still running at shutdown timeout; closing their connections", slog.Any("err", err))
		srv.Close()
	}
	<-serveErr // http.ErrServerClosed
	if mirror != nil {
		waitFills(sctx, mirror, logger)
	}
	logger.Info("stopped")
	return nil
}

// openStore builds the configured store and says where its data lives;
// onTagMoved, if not nil, hears its tag moves.
func openStore(cfg *config.Config, onTagMoved func(storage.TagMove)) (*storage.Store, string, error) {
	opts := storage.Options{UploadExpiry: cfg.Storage.Uploads.Expiry, OnTagMoved: onTagMoved}
	switch cfg.Storage.Driver {
	case config.DriverFilesystem:
		root := cfg.Storage.Filesystem.Root
		if abs, err := filepath.Abs(root); err == nil {
			root = abs // log where data really goes, not "./data"
		}
		store, err := storage.NewFilesystem(root, opts)
		if err != nil {
			return nil, "", fmt.Errorf("storage.filesystem.root %s: %w", root, err)
		}
		return store, root, nil
	case config.DriverInMemory:
		return storage.NewInMemory(opts), "(memory)", nil
	case config.DriverS3:
		s := cfg.Storage.S3
		store, err := storage.NewS3(storage.S3Params{
			Endpoint:      s.Endpoint,
			Region:        s.Region,
			Bucket:        s.Bucket,
			AccessKey:     s.AccessKey,
			SecretKey:     s.SecretKey,
			PathStyle:     s.PathStyle,
			Insecure:      s.Insecure,
			RootDirectory: s.RootDirectory,
			ChunkSize:     s.ChunkSize,
			Timeout:       s.Timeout,
		}, opts)
		if err != nil {
			return nil, "", fmt.Errorf("storage.s3: %w", err)
		}
		return store, fmt.Sprintf("s3 bucket %q root %q endpoint %q", s.Bucket, s.RootDirectory, s.Endpoint), nil
	}
	// config.Validate rejects other drivers; this guards callers that skip it.
	return nil, "", fmt.Errorf("storage.driver: unsupported driver %q", cfg.Storage.Driver)
}
