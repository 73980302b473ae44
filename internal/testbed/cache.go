package testbed

import (
	"fmt"
	"os"
	"path/filepath"
)

// cacheRoot is where built tools are kept between runs: kiln-testbed in the
// user's cache directory ($XDG_CACHE_HOME or $HOME/.cache), or in the
// temporary directory when there is no home.
func cacheRoot() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "kiln-testbed")
	}
	return filepath.Join(os.TempDir(), "kiln-testbed-cache")
}

// cachedBinary returns the path of the tool called name at version, calling
// build to make it in an empty directory when the cache does not hold it.
// A file lock makes parallel test binaries wait for one build instead of
// each doing it; isBuilt recognises a finished, right-version binary.
func cachedBinary(name, version string, isBuilt func(bin string) bool, build func(dir string) error) (string, error) {
	dir := filepath.Join(cacheRoot(), name+"-"+version)
	bin := filepath.Join(dir, name)
	if isBuilt(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isBuilt(bin) { // built by another process while this one waited
		return bin, nil
	}
	if err := build(dir); err != nil {
		return "", fmt.Errorf("building %s %s: %w", name, version, err)
	}
	if !isBuilt(bin) {
		return "", fmt.Errorf("building %s %s left no usable %s", name, version, bin)
	}
	return bin, nil
}
