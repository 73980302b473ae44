package rebase

import (
	"reflect"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func nonEmpty(h []v1.History) int {
	n := 0
	for _, e := range h {
		if !e.EmptyLayer {
			n++
		}
	}
	return n
}

// mergeConfig is the image's config with the new base's values wherever
// the image still had the old base's (it did not set its own).
func mergeConfig(img, old, nw v1.Config) v1.Config {
	out := *img.DeepCopy()
	same := func(a, b any) bool { return reflect.DeepEqual(a, b) }

	// Env, by key, in the image's order, then what the new base added.
	oldEnv, newEnv := envMap(old.Env), envMap(nw.Env)
	out.Env = nil
	seen := map[string]bool{}
	for _, kv := range img.Env {
		k, v, _ := strings.Cut(kv, "=")
		seen[k] = true
		if ov, ok := oldEnv[k]; ok && ov == v {
			if nv, ok := newEnv[k]; ok {
				out.Env = append(out.Env, k+"="+nv)
			}
			continue
		}
		out.Env = append(out.Env, kv)
	}
	for _, kv := range nw.Env {
		k, _, _ := strings.Cut(kv, "=")
		if _, inOld := oldEnv[k]; !seen[k] && !inOld {
			out.Env = append(out.Env, kv)
		}
	}

	// Labels, by key.
	if img.Labels != nil || nw.Labels != nil {
		labels := map[string]string{}
		for k, v := range img.Labels {
			if ov, ok := old.Labels[k]; ok && ov == v {
				if nv, ok := nw.Labels[k]; ok {
					labels[k] = nv
				}
				continue
			}
			labels[k] = v
		}
		for k, v := range nw.Labels {
			_, inImg := img.Labels[k]
			_, inOld := old.Labels[k]
			if !inImg && !inOld {
				labels[k] = v
			}
		}
		out.Labels = labels
		if len(labels) == 0 {
			out.Labels = nil
		}
	}

	out.ExposedPorts = mergeSet(img.ExposedPorts, old.ExposedPorts, nw.ExposedPorts)
	out.Volumes = mergeSet(img.Volumes, old.Volumes, nw.Volumes)

	if img.User == old.User {
		out.User = nw.User
	}
	if img.WorkingDir == old.WorkingDir {
		out.WorkingDir = nw.WorkingDir
	}
	if img.StopSignal == old.StopSignal {
		out.StopSignal = nw.StopSignal
	}
	if same(img.Shell, old.Shell) {
		out.Shell = slices.Clone(nw.Shell)
	}
	if same(img.Healthcheck, old.Healthcheck) {
		out.Healthcheck = nil
		if nw.Healthcheck != nil {
			h := *nw.Healthcheck
			h.Test = slices.Clone(h.Test)
			out.Healthcheck = &h
		}
	}
	// An ENTRYPOINT of the image's own resets CMD, as in a build.
	ownEntrypoint := !same(img.Entrypoint, old.Entrypoint)
	if !ownEntrypoint {
		out.Entrypoint = slices.Clone(nw.Entrypoint)
	}
	if !ownEntrypoint && same(img.Cmd, old.Cmd) {
		out.Cmd = slices.Clone(nw.Cmd)
		out.ArgsEscaped = nw.ArgsEscaped
	}
	return out
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// mergeSet keeps what the image added, drops what only the old base had,
// and adds what the new base has.
func mergeSet(img, old, nw map[string]struct{}) map[string]struct{} {
	out := map[string]struct{}{}
	for k := range img {
		if _, inOld := old[k]; inOld {
			if _, inNew := nw[k]; !inNew {
				continue
			}
		}
		out[k] = struct{}{}
	}
	for k := range nw {
		out[k] = struct{}{}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
