package retention

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestMatchRepository(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"team/*", "team/app", true},
		{"team/*", "team/a/b", false},
		{"team/*", "team", false},
		{"team/*", "other/app", false},
		{"*", "app", true},
		{"*", "team/app", false},
		{"**", "team/a/b", true},
		{"team/**", "team", true},
		{"team/**", "team/a/b", true},
		{"team/**", "teams/a", false},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c", false},
		{"app-[0-9]", "app-7", true},
	} {
		if got := matchRepository(tc.pattern, tc.name); got != tc.want {
			t.Errorf("matchRepository(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

// keep_last keeps the N most recently pushed tags the pattern matches;
// tags it does not match, and repositories no policy matches, stay.
func TestKeepLast(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Pushed in an order that is not the tags' lexical order.
	for i, tag := range []string{"v3", "v1", "v5", "v2", "v4"} {
		f.image("team/app", tag, t0.Add(time.Duration(i)*time.Hour), nil, tag)
	}
	f.image("team/app", "latest", t0, nil, "latest") // oldest, but not "v*"
	f.image("other/app", "o", t0, nil, "v1", "v2", "v3")

	rep := f.run(f.runner(nil, Policy{Repositories: "team/*", Tags: "v*", KeepLast: 2}), false)

	if got, want := tagNames(rep.Tags), []string{"team/app:v1", "team/app:v3", "team/app:v5"}; !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want %v", got, want)
	}
	if rep.TagsDeleted != 3 || rep.Repositories != 1 {
		t.Errorf("report %+v", rep)
	}
	if got, want := f.tagsOf("team/app"), []string{"latest", "v2", "v4"}; !slices.Equal(got, want) {
		t.Errorf("team/app keeps %v, want %v", got, want)
	}
	if got := f.tagsOf("other/app"); len(got) != 3 {
		t.Errorf("other/app keeps %v: no policy matches it", got)
	}
	if !strings.Contains(rep.Tags[0].Reason, "2 most recently pushed") {
		t.Errorf("reason %q", rep.Tags[0].Reason)
	}
}

// max_unused deletes tags neither pushed nor pulled within it: a pull of
// the tag's manifest counts as use.
func TestMaxUnusedCountsPulls(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stale := f.image("team/app", "stale", t0, nil, "stale")
	pulled := f.image("team/app", "pulled", t0, nil, "pulled")
	f.image("team/app", "fresh", f.now.Add(-time.Hour), nil, "fresh")
	f.pull("team/app", pulled, f.now.Add(-700*time.Hour))
	f.pull("team/app", stale, f.now.Add(-721*time.Hour)) // pulled, but too long ago

	rep := f.run(f.runner(nil, Policy{Repositories: "**", MaxUnused: 720 * time.Hour}), false)

	if got, want := tagNames(rep.Tags), []string{"team/app:stale"}; !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want %v", got, want)
	}
	if got, want := f.tagsOf("team/app"), []string{"fresh", "pulled"}; !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if !f.has("team/app", stale) {
		t.Error("deleting the tag deleted its manifest, with untagged_after off")
	}
	if d := rep.Tags[0]; !d.LastPulled.Equal(f.now.Add(-721*time.Hour)) || !d.Pushed.Equal(t0) {
		t.Errorf("deletion %+v: want its push and pull times", d)
	}
}

// untagged_after deletes manifests no kept tag reaches, unless pushed or
// pulled within it; what a kept manifest reaches (index children,
// referrers, subjects) stays, and parents are deleted before children.
func TestUntaggedAfter(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	old, young := t0, f.now.Add(-time.Hour)
	const repo = "team/app"
	image := f.image(repo, "image", old, nil, "v1")
	signature := f.image(repo, "sig", old, &image)            // referrer of a tagged image
	child := f.image(repo, "child", old, nil)                 // reached by a tagged index
	f.index(repo, old, []digest.Digest{child}, "multi")       // tagged index
	subject := f.image(repo, "subject", old, nil)             // reached from a tagged referrer
	f.image(repo, "attestation", old, &subject, "att")        // tagged referrer
	recent := f.image(repo, "recent", young, nil)             // untagged but young
	recentChild := f.image(repo, "recentchild", old, nil)     // reached by a young index
	f.index(repo, young, []digest.Digest{recentChild})        // young untagged index
	byDigest := f.image(repo, "bydigest", old, nil)           // pulled by digest lately
	f.pull(repo, byDigest, f.now.Add(-2*time.Hour))           //
	orphan := f.image(repo, "orphan", old, nil)               // old, untagged: goes
	orphanSig := f.image(repo, "orphansig", old, &orphan)     // its referrer: goes, first
	oldChild := f.image(repo, "oldchild", old, nil)           // child of an old untagged index
	oldIndex := f.index(repo, old, []digest.Digest{oldChild}) // goes before its child
	expired := f.image(repo, "expired", old, nil, "v0")       // tag beyond keep_last: tag and manifest go
	f.tagPushed[Ref{repo, "v0"}] = old.Add(-time.Hour)
	f.tagPushed[Ref{repo, "v1"}] = old

	rep := f.run(f.runner(nil, Policy{Repositories: repo, Tags: "v*", KeepLast: 1, UntaggedAfter: 168 * time.Hour}), false)

	if got, want := tagNames(rep.Tags), []string{repo + ":v0"}; !slices.Equal(got, want) {
		t.Fatalf("deleted tags %v, want %v", got, want)
	}
	gone := digests(rep.Manifests)
	wantGone := []digest.Digest{orphan, orphanSig, oldIndex, oldChild, expired}
	if len(gone) != len(wantGone) {
		t.Fatalf("deleted manifests %v, want %v", gone, wantGone)
	}
	for _, d := range wantGone {
		if !slices.Contains(gone, d) {
			t.Errorf("%s was not deleted", d)
		}
		if f.has(repo, d) {
			t.Errorf("%s is still stored", d)
		}
	}
	if slices.Index(gone, orphanSig) > slices.Index(gone, orphan) || slices.Index(gone, oldIndex) > slices.Index(gone, oldChild) {
		t.Errorf("order %v: a referrer or index must go before what it points at", gone)
	}
	for name, d := range map[string]digest.Digest{"tagged": image, "signature": signature, "child": child, "subject": subject,
		"recent": recent, "recent child": recentChild, "pulled by digest": byDigest} {
		if !f.has(repo, d) {
			t.Errorf("%s manifest %s was deleted", name, d)
		}
	}
	if rep.ManifestsDeleted != len(wantGone) {
		t.Errorf("ManifestsDeleted = %d", rep.ManifestsDeleted)
	}
}

// Tags build rules produce or build on are never deleted, whatever the
// policy says; the report names them.
func TestProtectedTagsStay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.image("team/app", "built", t0, nil, "built")
	f.image("team/base", "base", t0, nil, "base")
	f.image("team/app", "other", t0, nil, "other")
	f.image("team/app", "newest", f.now, nil, "newest")
	protected := []Ref{{"team/app", "built"}, {"team/base", "base"}}

	rep := f.run(f.runner(protected, Policy{Repositories: "team/*", KeepLast: 1, MaxUnused: time.Hour, UntaggedAfter: time.Hour}), false)

	if got, want := tagNames(rep.Tags), []string{"team/app:other"}; !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want %v", got, want)
	}
	if got, want := tagNames(rep.Protected), []string{"team/app:built", "team/base:base"}; !slices.Equal(got, want) {
		t.Errorf("protected %v, want %v", got, want)
	}
	if got := f.tagsOf("team/base"); !slices.Equal(got, []string{"base"}) {
		t.Errorf("team/base keeps %v", got)
	}
	if got := f.tagsOf("team/app"); !slices.Equal(got, []string{"built", "newest"}) {
		t.Errorf("team/app keeps %v", got)
	}
}

// Pull-through mirror repositories are left to the cache's own eviction.
func TestMirrorsUntouched(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.image("docker.io/library/alpine", "a", t0, nil, "3.19", "3.20")
	f.image("docker.io/library/alpine", "b", t0, nil)
	if err := f.MarkProxied(t.Context(), "docker.io/library/alpine"); err != nil {
		t.Fatal(err)
	}
	rep := f.run(f.runner(nil, Policy{Repositories: "**", KeepLast: 1, MaxUnused: time.Hour, UntaggedAfter: time.Hour}), false)
	if len(rep.Tags) != 0 || len(rep.Manifests) != 0 || rep.Mirrors != 1 || rep.Repositories != 0 {
		t.Fatalf("report %+v", rep)
	}
	if got := f.tagsOf("docker.io/library/alpine"); len(got) != 2 {
		t.Errorf("mirror keeps %v", got)
	}
}

// A dry run deletes nothing and reports what the real run then deletes.
func TestDryRunThenReal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var all []digest.Digest
	for i := range 4 {
		tag := string(rune('a' + i))
		all = append(all, f.image("team/app", tag, t0.Add(time.Duration(i)*time.Hour), nil, tag))
	}
	untagged := f.image("team/app", "untagged", t0, nil)
	r := f.runner(nil, Policy{Repositories: "team/app", KeepLast: 2, UntaggedAfter: 24 * time.Hour})

	dry := f.run(r, true)
	if !dry.DryRun || dry.TagsDeleted != 0 || dry.ManifestsDeleted != 0 {
		t.Fatalf("dry run report %+v", dry)
	}
	if got := f.tagsOf("team/app"); len(got) != 4 {
		t.Fatalf("a dry run deleted tags: %v left", got)
	}
	for _, d := range append(all, untagged) {
		if !f.has("team/app", d) {
			t.Fatalf("a dry run deleted manifest %s", d)
		}
	}
	if got, want := tagNames(dry.Tags), []string{"team/app:a", "team/app:b"}; !slices.Equal(got, want) {
		t.Fatalf("dry run plans %v, want %v", got, want)
	}
	if len(dry.Manifests) != 3 {
		t.Fatalf("dry run plans manifests %v, want a's, b's and the untagged one", digests(dry.Manifests))
	}

	real := f.run(r, false)
	if !slices.Equal(real.Tags, dry.Tags) || !slices.Equal(real.Manifests, dry.Manifests) {
		t.Fatalf("real run did\n%+v\n%+v\ndry run planned\n%+v\n%+v", real.Tags, real.Manifests, dry.Tags, dry.Manifests)
	}
	if real.TagsDeleted != 2 || real.ManifestsDeleted != 3 || real.Failed != 0 {
		t.Errorf("real run report %+v", real)
	}
	if got := f.tagsOf("team/app"); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("kept %v", got)
	}
	for _, d := range []digest.Digest{all[0], all[1], untagged} {
		if f.has("team/app", d) {
			t.Errorf("%s survived the real run", d)
		}
	}
	again := f.run(r, true)
	if len(again.Tags)+len(again.Manifests) != 0 {
		t.Errorf("after the real run a dry run still plans %+v", again)
	}
}

// Transient tags (a running build's staging tag) are neither deleted nor
// counted: a build must not push a kept tag out of keep_last.
func TestTransientTagsIgnored(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.image("team/app", "v1", t0, nil, "v1")
	f.image("team/app", "staging", f.now, nil, "kiln-build-42")
	r := New(Options{Store: f, Policies: []Policy{{Repositories: "**", KeepLast: 1, MaxUnused: time.Hour}},
		Transient: func(tag string) bool { return strings.HasPrefix(tag, "kiln-build-") }, Now: func() time.Time { return f.now }})
	rep := f.run(r, false)
	if got, want := tagNames(rep.Tags), []string{"team/app:v1"}; !slices.Equal(got, want) {
		t.Fatalf("deleted %v, want %v (v1 by max_unused only)", got, want)
	}
	r = New(Options{Store: f, Policies: []Policy{{Repositories: "**", KeepLast: 1}},
		Transient: func(tag string) bool { return strings.HasPrefix(tag, "kiln-build-") }, Now: func() time.Time { return f.now }})
	f.image("team/app", "v2", t0, nil, "v2")
	if rep := f.run(r, false); len(rep.Tags) != 0 {
		t.Fatalf("keep_last 1 deleted %v: the staging tag counted", tagNames(rep.Tags))
	}
	if got := f.tagsOf("team/app"); !slices.Equal(got, []string{"kiln-build-42", "v2"}) {
		t.Errorf("kept %v", got)
	}
}

// A tag pulled between the plan and the deletion stays: a real run plans
// each repository again before deleting and deletes only what both plans
// agree on.
func TestChangedSincePlannedStays(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.image("team/app", "v1", t0, nil, "v1")
	pulls := &pullAfterFirstLook{repo: "team/app", d: d, at: f.now}
	r := New(Options{Store: f, Pulls: pulls, Policies: []Policy{{Repositories: "**", MaxUnused: time.Hour}}, Now: func() time.Time { return f.now }})
	rep := f.run(r, false)
	if len(rep.Tags) != 1 || rep.Tags[0].Kept == "" || rep.TagsDeleted != 0 {
		t.Fatalf("report %+v: want v1 planned and kept", rep)
	}
	if got := f.tagsOf("team/app"); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("kept %v", got)
	}
}

// pullAfterFirstLook reports no pulls the first time it is asked, then a
// pull of d at at: a pull landing right after the plan.
type pullAfterFirstLook struct {
	repo  string
	d     digest.Digest
	at    time.Time
	calls int
}

func (p *pullAfterFirstLook) LastPulled(_ context.Context, repo string) (map[digest.Digest]time.Time, error) {
	p.calls++
	if p.calls == 1 || repo != p.repo {
		return map[digest.Digest]time.Time{}, nil
	}
	return map[digest.Digest]time.Time{p.d: p.at}, nil
}

// failingDelete fails to delete one tag.
type failingDelete struct {
	*fixture
	tag string
}

func (f failingDelete) DeleteTag(ctx context.Context, repo, tag string) error {
	if tag == f.tag {
		return errors.New("disk on fire")
	}
	return f.fixture.DeleteTag(ctx, repo, tag)
}

// A deletion that fails is reported and counted; the run goes on.
func TestFailedDeletionReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.image("team/app", "a", t0, nil, "a", "b")
	r := New(Options{Store: failingDelete{f, "a"}, Policies: []Policy{{Repositories: "**", MaxUnused: time.Hour}}, Now: func() time.Time { return f.now }})
	rep := f.run(r, false)
	if rep.Failed != 1 || rep.TagsDeleted != 1 || len(rep.Tags) != 2 || rep.Tags[0].Error != "disk on fire" || rep.Tags[1].Error != "" {
		t.Fatalf("report %+v", rep)
	}
	if got := f.tagsOf("team/app"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("kept %v", got)
	}
	if !strings.Contains(rep.String(), "1 deletions failed") {
		t.Errorf("summary %q", rep.String())
	}
}

// blockingList holds Repositories until release is closed.
type blockingList struct {
	*fixture
	inside, release chan struct{}
}

func (b blockingList) Repositories(ctx context.Context) ([]string, error) {
	close(b.inside)
	<-b.release
	return b.fixture.Repositories(ctx)
}

// One run at a time: a second one asked for meanwhile gets ErrRunning.
func TestOneRunAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := blockingList{f, make(chan struct{}), make(chan struct{})}
	r := New(Options{Store: b, Policies: []Policy{{Repositories: "**", KeepLast: 1}}, Now: func() time.Time { return f.now }})
	done := make(chan error, 1)
	go func() { _, err := r.Run(t.Context(), false); done <- err }()
	<-b.inside
	if _, err := r.Run(t.Context(), true); !errors.Is(err, ErrRunning) {
		t.Errorf("second run: %v, want ErrRunning", err)
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
