package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"kiln/config"
)

// serveReporting runs runServe and, when path is set, writes the bound
// address there once the listener is up, so whoever started kiln with
// port 0 learns the port. Failing to write it stops the server: a caller
// that asked for the file would otherwise wait for it forever.
func serveReporting(ctx context.Context, cfg *config.Config, logger *slog.Logger, path string) error {
	if path == "" {
		return runServe(ctx, cfg, logger, nil)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- runServe(ctx, cfg, logger, ready) }()
	select {
	case err := <-served:
		return err
	case addr := <-ready:
		if err := writeReadyFile(path, addr); err != nil {
			cancel()
			<-served
			return err
		}
	}
	return <-served
}

// writeReadyFile writes addr to path through a rename, so a reader polling
// for path never sees it half written.
func writeReadyFile(path, addr string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ready-*")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	_, werr := tmp.WriteString(addr + "\n")
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ready file: %w", werr)
	}
	return nil
}
