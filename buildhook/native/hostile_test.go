package native

import (
	"context"
	"io"
	"runtime"
	"strings"
	"testing"

	"kiln/buildhook/build"
	"kiln/internal/imagetest"
)

// passwdSize is the apparent size of the hostile base's /etc/passwd:
// the 2 GiB of the finding. The builder must refuse it without reading it.
const passwdSize = 2 << 30

// The finding: a base of a few hundred bytes whose /etc/passwd is a sparse
// 2 GiB file made kiln read it into memory and spool it to TMPDIR whenever
// a USER name was resolved, or when it was copied. Now resolving a name
// reads at most a small bound, spooling counts apparent sizes against
// buildhook.limits.spool, and nothing is left in TMPDIR.
func TestHostileBaseIsBounded(t *testing.T) {
	host := imagetest.Registry(t)
	base, gz := hostileBase(t, passwdSize, "WORKDIR /w")
	t.Logf("hostile base: a %d-byte layer holding a %d-byte /etc/passwd", gz, int64(passwdSize))
	bd := imagetest.Push(t, host, "evil:1", base)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	for _, tc := range []struct {
		name, dockerfile string
		builder          *Builder
		want             string
	}{
		// USER app comes from the base's config; WORKDIR looks it up.
		{"user name", "FROM $REGISTRY/evil:1\nWORKDIR /srv\n", &Builder{},
			"/etc/passwd is larger than"},
		{"copy", "FROM $REGISTRY/evil:1 AS evil\nFROM scratch\nCOPY --from=evil /etc/passwd /p\n", &Builder{SpoolLimit: 16 << 20},
			"more than the build's spool limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": "ARG REGISTRY\n" + tc.dockerfile})
			job := imagetest.Job(host, dir, "h1", build.ImageRef{Repo: "evil", Tag: "1"}, bd)
			log := &diskLog{dir: tmp}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := tc.builder.Build(context.Background(), job, log)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("allocated %d MiB, peak spool %d MiB, err: %v", alloc>>20, log.peak>>20, err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q\nlog:\n%s", err, tc.want, log)
			}
			if alloc > 64<<20 {
				t.Errorf("the build allocated %d MiB; a bounded build stays far below 64 MiB", alloc>>20)
			}
			if log.peak > 16<<20 {
				t.Errorf("the build spooled %d MiB to TMPDIR", log.peak>>20)
			}
			if left := spools(t, tmp); len(left) != 0 {
				t.Errorf("left in TMPDIR: %v", left)
			}
		})
	}
}

// A base's config is read whole: one larger than a fixed bound is refused
// from its manifest's descriptor, before it is fetched.
func TestHugeConfigRefused(t *testing.T) {
	host := imagetest.Registry(t)
	base := imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1", Labels: map[string]string{"padding": strings.Repeat("x", build.MaxConfigSize)}})
	bd := imagetest.Push(t, host, "python:3.8", base)
	dir := imagetest.ContextDir(t, map[string]string{"Dockerfile": "ARG REGISTRY\nFROM $REGISTRY/python:3.8\nCOPY a /a\n", "a": "a"})
	_, err := (&Builder{}).Build(context.Background(), imagetest.Job(host, dir, "c1", build.ImageRef{Repo: "python", Tag: "3.8"}, bd), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "its config is") {
		t.Fatalf("err = %v, want the config refused", err)
	}
}
