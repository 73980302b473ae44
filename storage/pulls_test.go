package storage

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestPullLogBatchesAndMerges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := NewFilesystem(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := pushImage(t, s, "team/app", "v1", "a", nil)
	b := pushImage(t, s, "team/app", "v2", "b", nil)
	gone := pushImage(t, s, "team/app", "v3", "gone", nil)

	clock := time.Unix(1_800_000_000, 0)
	one, other := NewPullLog(s), NewPullLog(s)
	one.now = func() time.Time { return clock }
	other.now = func() time.Time { return clock.Add(time.Hour) }

	one.Note("team/app", a.manifest)
	one.Note("team/app", gone.manifest)
	if _, err := s.driver.GetContent(ctx, pullsPath("team/app")); err == nil {
		t.Fatal("a pull wrote to the store before any flush")
	}
	// Another kiln sees nothing until the flush, then what was flushed.
	if got, _ := other.LastPulled(ctx, "team/app"); len(got) != 0 {
		t.Errorf("before the flush another kiln sees %v", got)
	}
	if err := s.DeleteManifest(ctx, "team/app", gone.manifest); err != nil {
		t.Fatal(err)
	}
	if err := one.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	other.Note("team/app", b.manifest)
	other.Note("team/app", a.manifest)
	one.now = func() time.Time { return clock.Add(-time.Hour) } // a late, older note loses
	one.Note("team/app", b.manifest)
	if err := other.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := one.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	got, err := NewPullLog(s).LastPulled(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	want := map[digest.Digest]time.Time{a.manifest: clock.Add(time.Hour), b.manifest: clock.Add(time.Hour)}
	if len(got) != len(want) || !got[a.manifest].Equal(want[a.manifest]) || !got[b.manifest].Equal(want[b.manifest]) {
		t.Errorf("last pulled %v, want %v (the deleted manifest dropped, the later time kept)", got, want)
	}

	// A corrupt file is a hint lost, not an error.
	if err := s.putContent(ctx, pullsPath("team/app"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if got, err := NewPullLog(s).LastPulled(ctx, "team/app"); err != nil || len(got) != 0 {
		t.Errorf("corrupt pull times: %v, %v; want none and no error", got, err)
	}

	// fsck knows the file.
	rep, err := s.Fsck(ctx, FsckOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("fsck: %+v", p)
	}
}
