package config

import (
	"fmt"
	"regexp"
	"time"
)

// Registry describes how clients name this registry.
type Registry struct {
	// Hostnames are extra host[:port] names clients use for kiln, besides
	// its listen address, localhost:PORT and 127.0.0.1:PORT. A Dockerfile
	// FROM naming one of them is watched by build-on-push.
	Hostnames []string `yaml:"hostnames"`
}

// Buildhook tunes build-on-push.
type Buildhook struct {
	Concurrency int           `yaml:"concurrency"` // builds running at once
	Window      time.Duration `yaml:"window"`      // optional wait after a trigger so bursts coalesce; 0 = off
	Timeout     time.Duration `yaml:"timeout"`     // per build
	Retries     int           `yaml:"retries"`     // extra attempts after a transient failure
	// AutoRebase adopts images pushed with org.opencontainers.image.base.name
	// naming a tag of this registry: they are rebased when that tag moves,
	// with no build rule.
	AutoRebase bool `yaml:"autorebase"`
	// Limits bound what one build may use.
	Limits BuildLimits `yaml:"limits"`
	// Records bound the records and logs of finished builds kept.
	Records BuildRecords `yaml:"records"`
	// WorkDir is where each kiln makes its private working directory
	// (buildah's storage); empty means the user's cache directory.
	WorkDir string `yaml:"work_dir"`
}

// BuildRecords is the retention of build records and logs: per rule, the
// Keep newest and any younger than MaxAge stay (0 turns either off).
type BuildRecords struct {
	Keep   int           `yaml:"keep"`
	MaxAge time.Duration `yaml:"max_age"`
}

// BuildLimits bound one build, whatever its Dockerfile or base does.
type BuildLimits struct {
	Memory int64 `yaml:"memory"` // bytes of memory a sandboxed build's commands may use
	Pids   int   `yaml:"pids"`   // processes a sandboxed build may run at once
	// Spool is the disk, in bytes, the native builder may spool one build's
	// layers and files to.
	Spool int64 `yaml:"spool"`
	// Log is how much of a build's log is kept as it runs; a longer
	// one keeps its end too (an eighth as much), added when it ends.
	Log int64 `yaml:"log"`
}

// Build is one build rule: an image kiln rebuilds when a base it is built
// FROM moves.
type Build struct {
	Name       string            `yaml:"name"`
	Context    string            `yaml:"context"`    // directory holding the Dockerfile; relative to the config file
	Dockerfile string            `yaml:"dockerfile"` // relative to context; default Dockerfile
	Tags       []string          `yaml:"tags"`       // repo:tag in this registry
	Args       map[string]string `yaml:"args"`
	Builder    string            `yaml:"builder"`  // auto | native | docker | buildah
	Strategy   string            `yaml:"strategy"` // build | rebase
	// Network is what a sandboxed RUN step reaches: none (the default) or
	// default (the builder's ordinary network).
	Network string `yaml:"network"`
	// OnBuild runs the ONBUILD triggers of a base image. Off by default: a
	// base's config is whoever pushed it, and its triggers run against
	// this rule's build context.
	OnBuild bool `yaml:"onbuild"`
}

var (
	ruleNameRegexp = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$`)
	repoTagRegexp  = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*:[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// applyBuildDefaults fills what a rule may leave out.
func (c *Config) applyBuildDefaults() {
	for i := range c.Builds {
		b := &c.Builds[i]
		if b.Dockerfile == "" {
			b.Dockerfile = "Dockerfile"
		}
		if b.Builder == "" {
			b.Builder = "auto"
		}
		if b.Strategy == "" {
			b.Strategy = "build"
		}
		if b.Network == "" {
			b.Network = "none"
		}
	}
}

func (c *Config) validateBuilds(bad func(key, format string, args ...any)) {
	if c.Buildhook.Concurrency < 1 {
		bad("buildhook.concurrency", "must be at least 1, got %d", c.Buildhook.Concurrency)
	}
	if c.Buildhook.Window < 0 {
		bad("buildhook.window", "must not be negative")
	}
	if c.Buildhook.Timeout <= 0 {
		bad("buildhook.timeout", "must be a positive duration")
	}
	if c.Buildhook.Retries < 0 {
		bad("buildhook.retries", "must not be negative")
	}
	if c.Buildhook.Limits.Memory < 1<<20 {
		bad("buildhook.limits.memory", "must be at least 1 MiB, got %d", c.Buildhook.Limits.Memory)
	}
	if c.Buildhook.Limits.Pids < 1 {
		bad("buildhook.limits.pids", "must be at least 1, got %d", c.Buildhook.Limits.Pids)
	}
	if c.Buildhook.Records.Keep < 0 {
		bad("buildhook.records.keep", "must not be negative, got %d", c.Buildhook.Records.Keep)
	}
	if c.Buildhook.Records.MaxAge < 0 {
		bad("buildhook.records.max_age", "must not be negative, got %s", c.Buildhook.Records.MaxAge)
	}
	if c.Buildhook.Limits.Log < 64<<10 {
		bad("buildhook.limits.log", "must be at least 64 KiB, got %d", c.Buildhook.Limits.Log)
	}
	if c.Buildhook.Limits.Spool < 1<<20 {
		bad("buildhook.limits.spool", "must be at least 1 MiB, got %d", c.Buildhook.Limits.Spool)
	}
	names := map[string]bool{}
	for i, b := range c.Builds {
		key := fmt.Sprintf("builds[%d]", i)
		if !ruleNameRegexp.MatchString(b.Name) {
			bad(key+".name", "%q is not a valid rule name", b.Name)
		} else if names[b.Name] {
			bad(key+".name", "%q is used by another rule", b.Name)
		}
		names[b.Name] = true
		if b.Context == "" {
			bad(key+".context", "must be set")
		}
		if len(b.Tags) == 0 {
			bad(key+".tags", "must list at least one repo:tag")
		}
		for _, t := range b.Tags {
			if !repoTagRegexp.MatchString(t) {
				bad(key+".tags", "%q is not repo:tag (lowercase repository, a tag)", t)
			}
		}
		switch b.Builder {
		case "auto", "native", "docker", "buildah":
		default:
			bad(key+".builder", "unknown builder %q (want auto, native, docker or buildah)", b.Builder)
		}
		switch b.Strategy {
		case "build", "rebase":
		default:
			bad(key+".strategy", "unknown strategy %q (want build or rebase)", b.Strategy)
		}
		switch b.Network {
		case "none", "default":
		default:
			bad(key+".network", "unknown network %q (want none or default)", b.Network)
		}
	}
}
