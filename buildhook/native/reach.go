package native

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
)

// Which stages a build reaches, and the arguments its FROM lines see.

// commandText is the instruction as written.
func commandText(c instructions.Command) string {
	if s, ok := c.(fmt.Stringer); ok {
		return s.String()
	}
	return strings.ToUpper(c.Name())
}

func runError(c instructions.Command) error {
	return fmt.Errorf("Dockerfile line %d: RUN needs a container; use builder docker or buildah", dockerfile.Line(c.Location()))
}

func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// envSet sets k in a KEY=value list, in place of an existing k.
func envSet(env []string, k, v string) []string {
	for i, kv := range env {
		key, _, _ := strings.Cut(kv, "=")
		if shell.EqualEnvKeys(key, k) {
			out := slices.Clone(env)
			out[i] = k + "=" + v
			return out
		}
	}
	return append(slices.Clone(env), k+"="+v)
}

func envGet(env []string, k string) (string, bool) {
	for _, kv := range env {
		key, v, _ := strings.Cut(kv, "=")
		if shell.EqualEnvKeys(key, k) {
			return v, true
		}
	}
	return "", false
}

// globalArgs are the variables FROM lines see: BuildKit's automatic
// platform arguments, then the ARGs before the first FROM, build
// arguments overriding their defaults.
func (br *buildRun) globalArgs(target v1.Platform) ([]string, error) {
	bp := hostPlatform()
	stageName := br.stages[len(br.stages)-1].Name
	if stageName == "" {
		stageName = "default"
	}
	args := br.job.Rule.Args
	var preset []string
	for _, kv := range [][2]string{
		{"BUILDPLATFORM", build.PlatformString(bp)}, {"BUILDOS", bp.OS}, {"BUILDOSVERSION", bp.OSVersion},
		{"BUILDARCH", bp.Architecture}, {"BUILDVARIANT", bp.Variant},
		{"TARGETPLATFORM", build.PlatformString(target)}, {"TARGETOS", target.OS}, {"TARGETOSVERSION", target.OSVersion},
		{"TARGETARCH", target.Architecture}, {"TARGETVARIANT", target.Variant},
		{"TARGETSTAGE", stageName},
	} {
		v := kv[1]
		if o, ok := args[kv[0]]; ok {
			v = o
		}
		preset = append(preset, kv[0]+"="+v)
	}
	return br.file.GlobalArgs(args, preset)
}

// stageRef finds an earlier stage by name (case-insensitive), or -1.
func (br *buildRun) stageRef(name string, before int) int {
	for i := 0; i < before; i++ {
		if br.stages[i].Name != "" && strings.EqualFold(br.stages[i].Name, name) {
			return i
		}
	}
	return -1
}

// copyFrom says what COPY --from names: a stage (index ≥ 0) or an image.
func (br *buildRun) copyFrom(from string, cur int) (int, error) {
	if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= cur {
			return 0, fmt.Errorf("COPY --from=%s: no such earlier stage", from)
		}
		return n, nil
	}
	return br.stageRef(from, cur), nil
}

// reachable marks the stages the last one needs, like BuildKit, which
// builds nothing else.
func (br *buildRun) reachable(global []string) ([]bool, error) {
	reach := make([]bool, len(br.stages))
	reach[len(reach)-1] = true
	for i := len(br.stages) - 1; i >= 0; i-- {
		if !reach[i] {
			continue
		}
		st := br.stages[i]
		base, _, err := br.shlex.ProcessWord(st.BaseName, shell.EnvsFromSlice(global))
		if err != nil {
			return nil, fmt.Errorf("Dockerfile line %d: %w", dockerfile.Line(st.Location), err)
		}
		if j := br.stageRef(base, i); j >= 0 {
			reach[j] = true
		}
		for _, c := range st.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" {
				j, err := br.copyFrom(cp.From, i)
				if err != nil {
					return nil, fmt.Errorf("Dockerfile line %d: %w", dockerfile.Line(c.Location()), err)
				}
				if j >= 0 {
					reach[j] = true
				}
			}
		}
	}
	return reach, nil
}

// reachableFor is globalArgs and reachable for target: what building
// and checking a platform both start from.
func (br *buildRun) reachableFor(target v1.Platform) ([]string, []bool, error) {
	global, err := br.globalArgs(target)
	if err != nil {
		return nil, nil, err
	}
	reach, err := br.reachable(global)
	if err != nil {
		return nil, nil, err
	}
	return global, reach, nil
}
