package testbed

import (
	"context"
	"time"
)

const (
	versitygwModule  = "github.com/versity/versitygw"
	versitygwPackage = versitygwModule + "/cmd/versitygw"
	versitygwVersion = "v1.8.0"
	// versitygwBuildTimeout is generous: the build takes 3 to 6 minutes on
	// two cores.
	versitygwBuildTimeout = 20 * time.Minute
)

// installVersitygw returns the path of versitygw at the pinned version,
// installing it from the Go module proxy into the cache the first time.
func installVersitygw(ctx context.Context) (string, error) {
	isBuilt := func(bin string) bool { return builtFrom(bin, versitygwModule, versitygwVersion) }
	return cachedBinary("versitygw", versitygwVersion, isBuilt, func(dir string) error {
		ctx, cancel := context.WithTimeout(ctx, versitygwBuildTimeout)
		defer cancel()
		// pkg@version ignores any go.mod around dir: kiln's plays no part.
		return runGo(ctx, dir, []string{"GOBIN=" + dir}, "install", versitygwPackage+"@"+versitygwVersion)
	})
}
