package storage

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestEvictLeastRecentlyPulledFirst(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := NewFilesystem(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	mirror := func(repo, seed string) fsckImage {
		t.Helper()
		img := pushImage(t, s, repo, "1", seed, nil)
		if err := s.MarkProxied(ctx, repo); err != nil {
			t.Fatal(err)
		}
		return img
	}
	pushed := pushImage(t, s, "team/app", "v1", "shared", nil)
	a := mirror("docker.io/library/a", "a")
	b := mirror("docker.io/library/b", "b")
	c := mirror("docker.io/library/c", "shared") // the same image as team/app:v1
	d := mirror("docker.io/library/d", "d")
	e := mirror("docker.io/library/e", "e")
	passTime(t, s, 30*24*time.Hour) // all filled a month ago

	now := time.Now()
	pulls := NewPullLog(s)
	pulledAt := func(repo string, img fsckImage, ago time.Duration) {
		pulls.now = func() time.Time { return now.Add(-ago) }
		pulls.Note(repo, img.manifest)
	}
	pulledAt("docker.io/library/b", b, time.Hour)
	pulledAt("docker.io/library/c", c, 2*time.Hour)
	pulledAt("docker.io/library/d", d, 3*time.Hour)
	pulledAt("docker.io/library/e", e, 30*time.Minute)
	if err := pulls.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	imageBytes := func(img fsckImage) int64 {
		t.Helper()
		var n int64
		for _, dg := range []digest.Digest{img.config, img.layer, img.manifest} {
			size, err := s.statBlob(ctx, dg)
			if err != nil {
				t.Fatal(err)
			}
			n += size
		}
		return n
	}
	usage, err := s.CacheUsage(ctx, pulls)
	if err != nil {
		t.Fatal(err)
	}
	own := imageBytes(a) + imageBytes(b) + imageBytes(d) + imageBytes(e)
	if usage.Images != 5 || usage.Repositories != 5 || usage.Bytes != own || usage.Shared != imageBytes(c) {
		t.Errorf("usage %+v, want 5 images, %d bytes of its own, %d shared with team/app", usage, own, imageBytes(c))
	}

	// Unused for a week: only a, never pulled since its fill.
	dry, err := s.Evict(ctx, pulls, EvictOptions{MaxUnused: 7 * 24 * time.Hour, Now: now, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Evicted) != 1 || dry.Evicted[0].Repo != "docker.io/library/a" || dry.Evicted[0].Why != "unused" ||
		dry.Evicted[0].Bytes != imageBytes(a) || !slices.Equal(dry.Evicted[0].Tags, []string{"1"}) {
		t.Errorf("dry run evicted %+v, want a alone", dry.Evicted)
	}
	if _, err := s.ResolveTag(ctx, "docker.io/library/a", "1"); err != nil {
		t.Errorf("a dry run removed a's tag: %v", err)
	}
	real, err := s.Evict(ctx, pulls, EvictOptions{MaxUnused: 7 * 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(real.Evicted) != 1 || real.After.Bytes != own-imageBytes(a) || real.After.Images != 4 {
		t.Errorf("eviction %+v", real)
	}
	if _, err := s.ResolveTag(ctx, "docker.io/library/a", "1"); !errors.Is(err, ErrTagUnknown) {
		t.Errorf("a's tag after eviction: %v", err)
	}
	if _, err := s.GetManifest(ctx, "docker.io/library/a", a.manifest); !errors.Is(err, ErrManifestUnknown) {
		t.Errorf("a's manifest after eviction: %v", err)
	}

	// Over budget by d's size: d, least recently pulled of those holding
	// bytes of their own, goes (c, older than b and e, frees nothing).
	budget := own - imageBytes(a) - imageBytes(d)
	over, err := s.Evict(ctx, pulls, EvictOptions{MaxSize: budget, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, ev := range over.Evicted {
		gone = append(gone, ev.Repo+" "+ev.Why)
	}
	if !slices.Equal(gone, []string{"docker.io/library/d over budget"}) || over.After.Bytes != budget {
		t.Errorf("over budget: evicted %v, after %+v; want d alone, %d bytes", gone, over.After, budget)
	}

	// The collector frees what eviction let go; the rest verifies.
	if _, err := s.GC(ctx, GCOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, img := range []fsckImage{a, d} {
		if _, err := s.statBlob(ctx, img.layer); !errors.Is(err, ErrBlobUnknown) {
			t.Errorf("an evicted layer is still stored: %v", err)
		}
	}
	for _, img := range []fsckImage{pushed, b, c, e} {
		if _, err := s.statBlob(ctx, img.layer); err != nil {
			t.Errorf("a kept layer is gone: %v", err)
		}
	}
	rep, err := s.Fsck(ctx, FsckOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck after eviction: %+v", p)
	}
}
