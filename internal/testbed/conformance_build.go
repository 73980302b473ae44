package testbed

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

const (
	conformanceModule = "github.com/opencontainers/distribution-spec/conformance"
	// conformanceVersion pins the suite: a newer one may add checks.
	conformanceVersion      = "v0.0.0-20260831232431-97274622c111"
	conformanceBuildTimeout = 15 * time.Minute
)

// buildConformance returns the path of the suite's binary at the pinned
// version, building it from the Go module proxy into the cache the first
// time.
func buildConformance(ctx context.Context) (string, error) {
	isBuilt := func(bin string) bool { return builtFrom(bin, conformanceModule, conformanceVersion) }
	return cachedBinary("conformance", conformanceVersion, isBuilt, func(dir string) error {
		ctx, cancel := context.WithTimeout(ctx, conformanceBuildTimeout)
		defer cancel()
		// A scratch module that requires the suite: its dependencies are
		// resolved and checksummed apart from kiln's go.mod.
		src, err := os.MkdirTemp(dir, "src-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(src)
		gomod := "module kiln-conformance-runner\n\ngo 1.24\n"
		if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
			return err
		}
		modMod := []string{"GOFLAGS=-mod=mod"}
		if err := runGo(ctx, src, modMod, "get", conformanceModule+"@"+conformanceVersion); err != nil {
			return err
		}
		tmp := filepath.Join(src, "conformance")
		if err := runGo(ctx, src, modMod, "build", "-trimpath", "-o", tmp, conformanceModule); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(dir, "conformance"))
	})
}
