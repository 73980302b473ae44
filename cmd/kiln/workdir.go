package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"kiln/buildhook"
	"kiln/internal/lockdir"
)

// workDirPattern names each kiln's working directory in the parent.
const workDirPattern = "kiln-*"

// defaultWorkParent is the user's cache directory: a build's bases are a
// cache, and /tmp is often memory.
func defaultWorkParent() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "kiln")
	}
	return filepath.Join(os.TempDir(), "kiln-"+strconv.Itoa(os.Geteuid()))
}

// openWorkDir makes this kiln's private working directory in parent (the
// default when empty), after removing those of kilns that died: several
// kilns may share parent, never a working directory.
func openWorkDir(parent string, logger *slog.Logger) (*lockdir.Dir, error) {
	if parent == "" {
		parent = defaultWorkParent()
	}
	removed, err := lockdir.RemoveDead(parent, workDirPattern, func(dir string) {
		if err := buildhook.RemoveBuildahStorage(dir); err != nil {
			logger.Warn("removing a dead kiln's buildah storage", "err", err)
		}
	})
	for _, dir := range removed {
		logger.Info("removed the working directory of a kiln that is gone", "dir", dir)
	}
	if err != nil {
		logger.Warn("removing the working directories of kilns that are gone", "err", err)
	}
	return lockdir.Create(parent, workDirPattern)
}

// closeWorkDir removes this kiln's working directory once its builds
// have stopped.
func closeWorkDir(dir *lockdir.Dir, logger *slog.Logger) {
	if err := buildhook.RemoveBuildahStorage(dir.Path); err != nil {
		logger.Warn("removing buildah's storage", "err", err)
	}
	if err := os.RemoveAll(dir.Path); err != nil {
		logger.Warn("removing the working directory", "dir", dir.Path, "err", err)
	}
	dir.Release()
}
