package buildhook

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"kiln/buildhook/build"
	"kiln/buildhook/dockerfile"
	"kiln/config"
)

// LoadRules resolves the configured build rules: contexts relative to
// baseDir, each Dockerfile read for the bases it names. hosts are the names
// under which clients reach this registry (see dockerfile.LocalRef); upstreams are the
// names of the mirrored registries (see UpstreamRef).
func LoadRules(builds []config.Build, baseDir string, hosts, upstreams []string) ([]*build.Rule, error) {
	rules := make([]*build.Rule, 0, len(builds))
	for _, b := range builds {
		r, err := loadRule(b, baseDir, hosts, upstreams)
		if err != nil {
			return nil, fmt.Errorf("build rule %s: %w", b.Name, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func loadRule(b config.Build, baseDir string, hosts, upstreams []string) (*build.Rule, error) {
	ctxDir := b.Context
	if !filepath.IsAbs(ctxDir) {
		ctxDir = filepath.Join(baseDir, ctxDir)
	}
	r := &build.Rule{
		Name:       b.Name,
		Context:    filepath.Clean(ctxDir),
		Dockerfile: b.Dockerfile,
		Network:    b.Network,
		Args:       b.Args,
		Builder:    b.Builder,
		Strategy:   b.Strategy,
		OnBuild:    b.OnBuild,
	}
	for _, t := range b.Tags {
		i := strings.LastIndex(t, ":")
		r.Tags = append(r.Tags, build.ImageRef{Repo: t[:i], Tag: t[i+1:]})
	}
	content, err := os.ReadFile(filepath.Join(r.Context, r.Dockerfile))
	if err != nil {
		return nil, err
	}
	info, err := dockerfile.Parse(content, r.Args)
	if err != nil {
		return nil, err
	}
	seen := map[build.ImageRef]bool{}
	resolve := func(name string) (build.ImageRef, bool) {
		if ref, ok := dockerfile.LocalRef(name, hosts); ok {
			return ref, true
		}
		return UpstreamRef(name, upstreams)
	}
	addBase := func(name string) {
		ref, ok := resolve(name)
		switch {
		case !ok && !strings.EqualFold(name, "scratch"):
			r.Unwatched = append(r.Unwatched, build.Unwatched{Name: name, Why: whyUnwatched(name, hosts, upstreams)})
		case ok && !seen[ref]:
			seen[ref] = true
			r.Bases = append(r.Bases, ref)
		}
	}
	for _, st := range info.Stages {
		if !st.FromStage {
			addBase(st.BaseName)
		}
	}
	for _, img := range info.CopyFromImages {
		addBase(img)
	}
	if final := finalImage(info); final != "" {
		if ref, ok := resolve(final); ok {
			r.FinalBase = &ref
		}
	}
	return r, nil
}

// finalImage follows the last stage's FROM through earlier stages to the
// image it starts from.
func finalImage(info *dockerfile.Info) string {
	if len(info.Stages) == 0 {
		return ""
	}
	st := info.Stages[len(info.Stages)-1]
	for hops := 0; st.FromStage && hops < len(info.Stages); hops++ {
		for _, prev := range info.Stages {
			if prev.Name != "" && strings.EqualFold(prev.Name, st.BaseName) {
				st = prev
				break
			}
		}
	}
	if st.FromStage {
		return ""
	}
	return st.BaseName
}

// RegistryHosts returns the names under which clients reach a kiln
// listening on addr: host:port as given, localhost and 127.0.0.1 with the
// port, and the extra configured hostnames.
func RegistryHosts(addr string, extra []string) []string {
	hosts := append([]string{}, extra...)
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		port := addr[i+1:]
		hosts = append(hosts, "localhost:"+port, "127.0.0.1:"+port, "[::1]:"+port)
		if h := addr[:i]; h != "" && h != "0.0.0.0" && h != "[::]" {
			hosts = append(hosts, addr)
		}
	}
	return hosts
}

// UpstreamRef returns the repository under which kiln caches a reference
// to one of the mirrored registries: "python:3.8" and
// "docker.io/library/python:3.8" are both docker.io/library/python:3.8
// when docker.io is mirrored. Digest references are never watched.
func UpstreamRef(ref string, upstreams []string) (build.ImageRef, bool) {
	if len(upstreams) == 0 || strings.EqualFold(ref, "scratch") {
		return build.ImageRef{}, false
	}
	domain, r, ok := dockerfile.Watchable(ref)
	if !ok {
		return build.ImageRef{}, false
	}
	for _, u := range upstreams {
		if strings.EqualFold(u, domain) {
			r.Repo = u + "/" + r.Repo
			return r, true
		}
	}
	return build.ImageRef{}, false
}
