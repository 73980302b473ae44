package retention

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"kiln/storage"
)

// t0 is the fixtures' epoch; the clock starts later.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture is an in-memory store whose push times the test chooses: the
// in-memory driver stamps files with the wall clock, which the planner
// must not depend on.
type fixture struct {
	*storage.Store
	t          *testing.T
	tagPushed  map[Ref]time.Time
	linkPushed map[digest.Digest]time.Time
	now        time.Time
	pulls      *storage.PullLog
	pullClock  time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{Store: storage.NewInMemory(storage.Options{}), t: t,
		tagPushed: map[Ref]time.Time{}, linkPushed: map[digest.Digest]time.Time{}, now: t0.Add(1000 * time.Hour)}
	f.pulls = storage.NewPullLogClock(f.Store, func() time.Time { return f.pullClock })
	return f
}

func (f *fixture) TagAge(ctx context.Context, repo, tag string) (time.Time, error) {
	if _, err := f.Store.TagAge(ctx, repo, tag); err != nil {
		return time.Time{}, err
	}
	return f.tagPushed[Ref{repo, tag}], nil
}

func (f *fixture) ManifestLinks(ctx context.Context, repo string) (map[digest.Digest]time.Time, error) {
	links, err := f.Store.ManifestLinks(ctx, repo)
	for d := range links {
		links[d] = f.linkPushed[d]
	}
	return links, err
}

// runner returns a Runner on f with policies and protected tags.
func (f *fixture) runner(protected []Ref, policies ...Policy) *Runner {
	return New(Options{Store: f, Policies: policies, Pulls: f.pulls,
		Protected: func() []Ref { return protected }, Now: func() time.Time { return f.now }})
}

// pull notes a pull of repo's manifest d at when.
func (f *fixture) pull(repo string, d digest.Digest, when time.Time) {
	f.pullClock = when
	f.pulls.Note(repo, d)
}

// image pushes a one-layer image at when, tagged with tags, with an
// optional subject; seed makes it distinct.
func (f *fixture) image(repo, seed string, when time.Time, subject *digest.Digest, tags ...string) digest.Digest {
	f.t.Helper()
	put := func(content []byte, mt string) v1.Descriptor {
		d := digest.FromBytes(content)
		if _, err := f.PutBlob(f.t.Context(), repo, d, bytes.NewReader(content)); err != nil {
			f.t.Fatal(err)
		}
		return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(content))}
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: put([]byte(`{"seed":"`+seed+`"}`), v1.MediaTypeImageConfig),
		Layers: []v1.Descriptor{put([]byte("layer "+seed), v1.MediaTypeImageLayerGzip)}}
	if subject != nil {
		m.Subject = &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: *subject, Size: 1}
	}
	m.SchemaVersion = 2
	return f.manifest(repo, m, when, tags...)
}

// index pushes an index over children at when.
func (f *fixture) index(repo string, when time.Time, children []digest.Digest, tags ...string) digest.Digest {
	f.t.Helper()
	ix := v1.Index{MediaType: v1.MediaTypeImageIndex}
	ix.SchemaVersion = 2
	for _, c := range children {
		m, err := f.GetManifest(f.t.Context(), repo, c)
		if err != nil {
			f.t.Fatal(err)
		}
		ix.Manifests = append(ix.Manifests, v1.Descriptor{MediaType: m.MediaType, Digest: c, Size: int64(len(m.Content))})
	}
	return f.manifest(repo, ix, when, tags...)
}

func (f *fixture) manifest(repo string, v any, when time.Time, tags ...string) digest.Digest {
	f.t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	parsed, err := storage.ParseManifest("", body)
	if err != nil {
		f.t.Fatal(err)
	}
	d := digest.FromBytes(body)
	if err := f.PutManifest(f.t.Context(), repo, storage.Manifest{Digest: d, MediaType: parsed.MediaType, Content: body}, parsed, tags...); err != nil {
		f.t.Fatal(err)
	}
	f.linkPushed[d] = when
	for _, tag := range tags {
		f.tagPushed[Ref{repo, tag}] = when
	}
	return d
}

// tagsOf returns repo's tags.
func (f *fixture) tagsOf(repo string) []string {
	f.t.Helper()
	tags, err := f.Tags(f.t.Context(), repo)
	if err != nil {
		f.t.Fatal(err)
	}
	return tags
}

// has reports whether repo holds manifest d.
func (f *fixture) has(repo string, d digest.Digest) bool {
	f.t.Helper()
	ok, err := f.HasManifest(f.t.Context(), repo, d)
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

func (f *fixture) run(r *Runner, dryRun bool) *Report {
	f.t.Helper()
	rep, err := r.Run(f.t.Context(), dryRun)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

// tagNames lists the "repo:tag" of dels.
func tagNames(dels []Deletion) []string {
	var out []string
	for _, d := range dels {
		out = append(out, d.Repository+":"+d.Tag)
	}
	slices.Sort(out)
	return out
}

// digests lists the digests of dels, in their order.
func digests(dels []Deletion) []digest.Digest {
	var out []digest.Digest
	for _, d := range dels {
		out = append(out, d.Digest)
	}
	return out
}
