package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kiln/buildhook"
	"kiln/buildhook/build"
	"kiln/config"
	"kiln/storage"
	"kiln/ui"
)

// startBuildhook loads the build rules and starts build-on-push on store;
// the service attaches to moves, the listener store was built with. addr
// is the bound listen address: builders reach kiln through it; workDir is
// this kiln's private working directory. onBuildDone hears every build
// that ends (metrics); access is how builders log in to and trust kiln;
// shared, in a cluster, puts the queue and records in its database.
func startBuildhook(ctx context.Context, cfg *config.Config, store *storage.Store, moves *buildhook.TagMoves, addr, workDir string, logger *slog.Logger, onBuildDone func(rule, result string, ran time.Duration), onStatus func(buildhook.StatusChange), access build.SelfAccess, shared *buildhook.SharedOptions) (*buildhook.Service, error) {
	self := loopbackAddr(addr)
	hosts := buildhook.RegistryHosts(addr, cfg.Registry.Hostnames)
	hosts = append(hosts, self)
	rules, err := buildhook.LoadRules(cfg.Builds, configDir(cfg), hosts, upstreamNames(cfg))
	if err != nil {
		return nil, err
	}
	svc, err := buildhook.NewService(buildhook.ServiceOptions{
		Store:       store,
		TagMoves:    moves,
		Rules:       rules,
		Registry:    self,
		Hosts:       hosts,
		Upstreams:   upstreamNames(cfg),
		Concurrency: cfg.Buildhook.Concurrency,
		Window:      cfg.Buildhook.Window,
		Timeout:     cfg.Buildhook.Timeout,
		Retries:     cfg.Buildhook.Retries,
		Limits:      buildhook.Limits{Memory: cfg.Buildhook.Limits.Memory, Pids: cfg.Buildhook.Limits.Pids, Spool: cfg.Buildhook.Limits.Spool, Log: int(cfg.Buildhook.Limits.Log)},
		AutoRebase:  cfg.Buildhook.AutoRebase,
		WorkDir:     workDir,
		Retention:   buildhook.Retention{Keep: cfg.Buildhook.Records.Keep, MaxAge: cfg.Buildhook.Records.MaxAge},
		Logger:      logger,
		OnBuildDone: onBuildDone,
		OnStatus:    onStatus,
		Self:        access, // auth and TLS: builders push to kiln itself
		Shared:      shared, // nil without a cluster
	})
	if err != nil {
		return nil, err
	}
	if cfg.Buildhook.AutoRebase {
		logger.Info("autorebase on: images pushed with " + build.AnnotationBaseName + " naming a tag here are rebased when it moves")
	}
	for _, r := range rules {
		logger.Info("build rule", "name", r.Name, "bases", r.Bases, "tags", r.Tags, "builder", r.Builder, "strategy", r.Strategy)
		for _, u := range r.Unwatched {
			logger.Warn("build rule names an image kiln cannot watch", "rule", r.Name, "image", u.Name, "why", u.Why)
		}
		if len(r.Bases) == 0 {
			logger.Warn("build rule watches nothing: no push will rebuild it", "rule", r.Name)
		}
	}
	return svc, svc.Start(ctx)
}

// loopbackAddr turns a bound address into one kiln's own builders can dial:
// a wildcard host becomes 127.0.0.1.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// configDir is where relative build contexts start: the config file's
// directory, or the working directory for the embedded default.
func configDir(cfg *config.Config) string {
	if cfg.Source == config.DefaultSource {
		wd, _ := os.Getwd()
		return wd
	}
	return filepath.Dir(cfg.Source)
}

// routes sends /kiln/v1/gc, /kiln/v1/retention and /kiln/v1/cache to the
// admin API, the rest of /kiln/ to the build API, the web pages (/ and
// /ui/) to pages and everything else to the registry.
// It is not an http.ServeMux on purpose: ServeMux cleans paths, turning
// "/v2/../x" into a redirect where the registry must answer NAME_INVALID.
func routes(registryAPI, kilnAPI, adminAPI, pages http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ui.Serves(r.URL.Path) {
			pages.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == adminGCPath || r.URL.Path == adminRetentionPath || r.URL.Path == adminCachePath {
			adminAPI.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/kiln/") {
			kilnAPI.ServeHTTP(w, r)
			return
		}
		registryAPI.ServeHTTP(w, r)
	})
}
