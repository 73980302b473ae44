package testbed

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// runGo runs the go command in dir, away from the caller's module: no
// workspace, no GOFLAGS of the caller (such as -mod=vendor), and no cgo, so
// no C compiler is needed. extraEnv comes last and wins.
func runGo(ctx context.Context, dir string, extraEnv []string, args ...string) error {
	cmd := exec.CommandContext(ctx, goBinary(), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "CGO_ENABLED=0")
	cmd.Env = append(cmd.Env, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	return nil
}

// goBinary is the go command on PATH, else the one of the toolchain that
// built the test binary.
func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// builtFrom reports whether bin is a complete Go binary built from module
// at version, as its main module or as a dependency.
func builtFrom(bin, module, version string) bool {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return false
	}
	if info.Main.Path == module {
		return info.Main.Version == version
	}
	for _, dep := range info.Deps {
		if dep.Path == module {
			return dep.Version == version && dep.Replace == nil
		}
	}
	return false
}
