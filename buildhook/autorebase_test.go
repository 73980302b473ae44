package buildhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
	"kiln/config"
)

// An image pushed with base annotations naming a tag of kiln is rebased
// when that tag moves, down a chain of adopted images, each level once;
// adoptions survive a restart.
func TestAutoRebase(t *testing.T) {
	t.Parallel()
	k := newAutoKiln(t, true, nil, t.TempDir())
	base1 := atRandomImage(t, 2)
	k.push(t, "base:1", base1)
	app := atDerived(t, base1, k.host+"/base:1")
	k.push(t, "team/app:v1", app)
	// tools is built on app, by its tag.
	tools := atDerived(t, app, k.host+"/team/app:v1")
	k.push(t, "tools:v1", tools)
	// Not adopted: no annotations, a base elsewhere, itself as base.
	k.push(t, "plain:v1", atDerived(t, base1, ""))
	k.push(t, "foreign:v1", atDerived(t, base1, "docker.io/library/base:1"))
	k.waitIdle(t)

	want := []Adoption{{Image: build.ImageRef{Repo: "team/app", Tag: "v1"}, Base: build.ImageRef{Repo: "base", Tag: "1"}}, {Image: build.ImageRef{Repo: "tools", Tag: "v1"}, Base: build.ImageRef{Repo: "team/app", Tag: "v1"}}}
	sameAdoptions := func(got []Adoption) bool {
		return slices.EqualFunc(got, want, func(a, b Adoption) bool { return a.Image == b.Image && a.Base == b.Base })
	}
	if got := k.svc.Adopted(); !sameAdoptions(got) {
		t.Fatalf("adopted %+v, want %+v", got, want)
	}
	if recs := k.records(t); len(recs) != 0 {
		t.Fatalf("builds before the base moved: %+v", recs)
	}
	appOwn := atLayers(t, app)[2:]
	toolsOwn := atLayers(t, tools)[3:]

	for round := 1; round <= 2; round++ {
		base := atRandomImage(t, 2)
		bd := k.push(t, "base:1", base)
		k.waitIdle(t)
		recs := k.records(t)
		if len(recs) != 2*round {
			t.Fatalf("round %d: %d builds, want %d: %+v", round, len(recs), 2*round, recs)
		}
		// Newest first: tools after app, each once.
		if recs[1].Rule != "auto:team/app:v1" || recs[0].Rule != "auto:tools:v1" {
			t.Errorf("round %d: builds %s then %s", round, recs[1].Rule, recs[0].Rule)
		}
		for _, r := range recs[:2] {
			if r.Status != StatusSucceeded || r.Builder != "rebase" || r.Result == "" {
				t.Errorf("round %d: build %+v", round, r)
			}
		}
		gotApp := k.image(t, "team/app:v1")
		if got, want := atLayers(t, gotApp), append(atLayers(t, base), appOwn...); !slices.Equal(got, want) {
			t.Errorf("round %d: app layers\n%v\nwant\n%v", round, got, want)
		}
		ann := atAnnotations(t, gotApp)
		if ann[build.AnnotationBaseDigest] != bd.String() || ann[build.AnnotationBaseName] != k.host+"/base:1" || ann["org.example.keep"] != "yes" {
			t.Errorf("round %d: app annotations %v, want base digest %s", round, ann, bd)
		}
		appDigest, _ := gotApp.Digest()
		gotTools := k.image(t, "tools:v1")
		if got, want := atLayers(t, gotTools), append(atLayers(t, gotApp), toolsOwn...); !slices.Equal(got, want) {
			t.Errorf("round %d: tools layers\n%v\nwant\n%v", round, got, want)
		}
		if ann := atAnnotations(t, gotTools); ann[build.AnnotationBaseDigest] != appDigest.String() {
			t.Errorf("round %d: tools built on %s, app is %s", round, ann[build.AnnotationBaseDigest], appDigest)
		}
		if got := k.svc.Adopted(); !sameAdoptions(got) {
			t.Errorf("round %d: adopted %+v", round, got)
		}
	}
	var log strings.Builder
	if err := k.svc.Records().FollowLog(t.Context(), k.records(t)[1].ID, &log, false); err != nil ||
		!strings.Contains(log.String(), "1 own layers kept") {
		t.Errorf("log: %v\n%s", err, log.String())
	}

	// The API shows the auto rules and triggers them by name; an image
	// already on its base's current digest is left alone.
	api := httptest.NewServer(k.svc.Handler())
	defer api.Close()
	resp, err := http.Get(api.URL + "/kiln/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	var rules []ruleView
	json.NewDecoder(resp.Body).Decode(&rules)
	resp.Body.Close()
	if len(rules) != 2 || rules[0].Name != "auto:team/app:v1" || !rules[0].Auto || rules[0].Strategy != "rebase" ||
		!slices.Equal(rules[0].Bases, []string{"base:1"}) || !slices.Equal(rules[0].Dependents, []string{"auto:tools:v1"}) {
		t.Errorf("rules: %+v", rules)
	}
	resp, err = http.Post(api.URL+"/kiln/v1/rules/"+url.PathEscape("auto:team/app:v1")+"/trigger", "", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("trigger: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	k.waitIdle(t)
	recs := k.records(t)
	log.Reset()
	k.svc.Records().FollowLog(t.Context(), recs[0].ID, &log, false)
	if len(recs) != 5 || recs[0].Rule != "auto:team/app:v1" || recs[0].Status != StatusSucceeded ||
		!strings.Contains(log.String(), "nothing to do: team/app:v1 is already built on base:1@") {
		t.Errorf("manual trigger: %d builds, %+v\n%s", len(recs), recs[0], log.String())
	}

	// A restart keeps the adoptions.
	k.cancel()
	k.svc.Wait()
	k.start(t, true, nil)
	if got := k.svc.Adopted(); !sameAdoptions(got) {
		t.Fatalf("after a restart: adopted %+v", got)
	}
	k.push(t, "base:1", atRandomImage(t, 1))
	k.waitIdle(t)
	if recs := k.records(t); len(recs) != 7 || recs[0].Rule != "auto:tools:v1" || recs[0].Status != StatusSucceeded {
		t.Errorf("after a restart: %d builds, newest %+v", len(recs), recs[0])
	}

	// Pushing the image without the annotations ends its adoption.
	k.push(t, "tools:v1", atRandomImage(t, 1))
	k.waitIdle(t)
	if got := k.svc.Adopted(); len(got) != 1 || got[0].Image.Repo != "team/app" {
		t.Errorf("adopted after an unannotated push: %+v", got)
	}
}

// An image pushed after its base already moved is rebased at once.
func TestAutoRebaseCatchUp(t *testing.T) {
	t.Parallel()
	k := newAutoKiln(t, true, nil, t.TempDir())
	old := atRandomImage(t, 1)
	k.push(t, "base:1", old)
	nb := k.push(t, "base:1", atRandomImage(t, 1))
	k.push(t, "app:v1", atDerived(t, old, k.host+"/base:1"))
	k.waitIdle(t)
	recs := k.records(t)
	if len(recs) != 1 || recs[0].Reason != "adopted" || recs[0].Status != StatusSucceeded {
		t.Fatalf("builds %+v", recs)
	}
	if ann := atAnnotations(t, k.image(t, "app:v1")); ann[build.AnnotationBaseDigest] != nb.String() {
		t.Errorf("app on %s, want %s", ann[build.AnnotationBaseDigest], nb)
	}
}

// When the image's layers do not start with its declared base's, the
// build fails and says why: there is no Dockerfile to fall back to.
func TestAutoRebaseNotApplicable(t *testing.T) {
	t.Parallel()
	k := newAutoKiln(t, true, nil, t.TempDir())
	base := atRandomImage(t, 1)
	bd := k.push(t, "base:1", base)
	liar := mutate.Annotations(atRandomImage(t, 2), map[string]string{
		build.AnnotationBaseName: k.host + "/base:1", build.AnnotationBaseDigest: bd.String(),
	}).(v1.Image)
	before := k.push(t, "app:v1", liar)
	k.waitIdle(t)
	k.push(t, "base:1", atRandomImage(t, 1))
	k.waitIdle(t)
	recs := k.records(t)
	if len(recs) != 1 || recs[0].Status != StatusFailed || !strings.Contains(recs[0].Error, "rebase not applicable") ||
		!strings.Contains(recs[0].Error, "no Dockerfile") {
		t.Fatalf("builds %+v", recs)
	}
	if d, _ := k.image(t, "app:v1").Digest(); d != before {
		t.Errorf("app:v1 moved to %s after a failed build", d)
	}
}

// With autorebase off nothing is adopted and nothing builds.
func TestAutoRebaseOff(t *testing.T) {
	t.Parallel()
	k := newAutoKiln(t, false, nil, t.TempDir())
	base := atRandomImage(t, 1)
	k.push(t, "base:1", base)
	before := k.push(t, "app:v1", atDerived(t, base, k.host+"/base:1"))
	k.waitIdle(t)
	k.push(t, "base:1", atRandomImage(t, 1))
	k.waitIdle(t)
	if recs := k.records(t); len(recs) != 0 {
		t.Errorf("builds with autorebase off: %+v", recs)
	}
	if got := k.svc.Adopted(); got != nil {
		t.Errorf("adopted with autorebase off: %+v", got)
	}
	if d, _ := k.image(t, "app:v1").Digest(); d != before {
		t.Errorf("app:v1 moved")
	}
}

// An image a configured rule produces is never adopted: its rule alone
// rebuilds it.
func TestAutoRebaseSkipsRuleImages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "Dockerfile"), []byte("ARG REGISTRY\nFROM ${REGISTRY}/base:1\nCOPY a.txt /a.txt\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app", "a.txt"), []byte("a"), 0o644)
	k := newAutoKiln(t, true, []config.Build{{Name: "app", Context: "app", Dockerfile: "Dockerfile", Tags: []string{"app:v1"}, Builder: "native", Strategy: "build"}}, dir)
	base := atRandomImage(t, 1)
	k.push(t, "base:1", base)
	k.waitIdle(t)
	k.push(t, "app:v1", atDerived(t, base, k.host+"/base:1")) // by hand, annotated
	k.waitIdle(t)
	if got := k.svc.Adopted(); len(got) != 0 {
		t.Fatalf("adopted %+v", got)
	}
	k.push(t, "base:1", atRandomImage(t, 1))
	k.waitIdle(t)
	recs := k.records(t)
	if len(recs) != 2 || recs[0].Rule != "app" || recs[1].Rule != "app" {
		for _, r := range recs {
			t.Logf("%+v", r)
		}
		t.Fatalf("%d builds, want 2 of rule app", len(recs))
	}
	if got := k.svc.Adopted(); len(got) != 0 {
		t.Errorf("adopted after the rule's build: %+v", got)
	}
}

// candidates lists an un-annotated image built on another tag, with the
// base sharing the most layers, and not unrelated or annotated images.
func TestCandidates(t *testing.T) {
	t.Parallel()
	k := newAutoKiln(t, false, nil, t.TempDir())
	base := atRandomImage(t, 2)
	bd := k.push(t, "base:1", base)
	app := atDerived(t, base, "")
	ad := k.push(t, "app:v1", app)
	k.push(t, "app2:v1", atDerived(t, app, "")) // best base: app:v1
	k.push(t, "annotated:v1", atDerived(t, base, k.host+"/base:1"))
	k.push(t, "other:v1", atRandomImage(t, 3))
	// An index whose linux/amd64 image is built on base.
	arm := atRandomImage(t, 2)
	amd := atDerived(t, base, "")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	if err := remote.WriteIndex(k.ref(t, "multi:v1"), idx); err != nil {
		t.Fatal(err)
	}
	md, _ := idx.Digest()

	want := []Candidate{
		{Image: "app2:v1", Base: "app:v1", BaseDigest: digestOf(ad), SharedLayers: 3, Layers: 4},
		{Image: "app:v1", ImageDigest: digestOf(ad), Base: "base:1", BaseDigest: digestOf(bd), SharedLayers: 2, Layers: 3},
		{Image: "multi:v1", ImageDigest: digestOf(md), Platform: "linux/amd64", Base: "base:1", BaseDigest: digestOf(bd), SharedLayers: 2, Layers: 3},
	}
	check := func(got []Candidate) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("candidates %+v", got)
		}
		for i := range want {
			w := want[i]
			if w.ImageDigest == "" {
				w.ImageDigest = got[i].ImageDigest
			}
			if got[i] != w {
				t.Errorf("candidate %d: %+v, want %+v", i, got[i], w)
			}
		}
	}
	got, err := FindCandidates(t.Context(), k.store)
	if err != nil {
		t.Fatal(err)
	}
	check(got)

	api := httptest.NewServer(k.svc.Handler())
	defer api.Close()
	resp, err := http.Get(api.URL + "/kiln/v1/candidates")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET candidates: %v %v", resp.Status, err)
	}
	defer resp.Body.Close()
	var viaAPI []Candidate
	if err := json.NewDecoder(resp.Body).Decode(&viaAPI); err != nil {
		t.Fatal(err)
	}
	check(viaAPI)
}

func digestOf(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }

// An index pushed with base annotations on the index is rebased platform
// by platform.
func TestAutoRebaseIndex(t *testing.T) {
	t.Parallel()
	k := newAutoKiln(t, true, nil, t.TempDir())
	plats := []*v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	index := func(imgs []v1.Image) v1.ImageIndex {
		var adds []mutate.IndexAddendum
		for i, img := range imgs {
			cf, _ := img.ConfigFile()
			cf = cf.DeepCopy()
			cf.OS, cf.Architecture = plats[i].OS, plats[i].Architecture
			img, err := mutate.ConfigFile(img, cf)
			if err != nil {
				t.Fatal(err)
			}
			adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plats[i]}})
		}
		return mutate.AppendManifests(empty.Index, adds...)
	}
	pushIndex := func(repoTag string, idx v1.ImageIndex) v1.Hash {
		if err := remote.WriteIndex(k.ref(t, repoTag), idx); err != nil {
			t.Fatal(err)
		}
		d, _ := idx.Digest()
		return d
	}
	children := func(idx v1.ImageIndex) []v1.Image {
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var out []v1.Image
		for _, m := range im.Manifests {
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, img)
		}
		return out
	}
	base := index([]v1.Image{atRandomImage(t, 1), atRandomImage(t, 1)})
	bd := pushIndex("base:1", base)
	bases := children(base)
	app := index([]v1.Image{atDerived(t, bases[0], ""), atDerived(t, bases[1], "")})
	app = mutate.Annotations(app, map[string]string{build.AnnotationBaseName: k.host + "/base:1", build.AnnotationBaseDigest: bd.String()}).(v1.ImageIndex)
	pushIndex("app:v1", app)
	k.waitIdle(t)
	if got := k.svc.Adopted(); len(got) != 1 {
		t.Fatalf("adopted %+v", got)
	}
	newBase := index([]v1.Image{atRandomImage(t, 1), atRandomImage(t, 1)})
	nd := pushIndex("base:1", newBase)
	k.waitIdle(t)
	if recs := k.records(t); len(recs) != 1 || recs[0].Status != StatusSucceeded {
		t.Fatalf("builds %+v", recs)
	}
	got, err := remote.Index(k.ref(t, "app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := got.IndexManifest()
	if im.Annotations[build.AnnotationBaseDigest] != nd.String() {
		t.Errorf("index annotations %v, want base digest %s", im.Annotations, nd)
	}
	oldApp, newBases := children(app), children(newBase)
	for i, img := range children(got) {
		want := append(atLayers(t, newBases[i]), atLayers(t, oldApp[i])[1:]...)
		if l := atLayers(t, img); !slices.Equal(l, want) {
			t.Errorf("%s layers %v, want %v", plats[i].Architecture, l, want)
		}
		nbd, _ := newBases[i].Digest()
		if ann := atAnnotations(t, img); ann[build.AnnotationBaseDigest] != nbd.String() {
			t.Errorf("%s on %s, want %s", plats[i].Architecture, ann[build.AnnotationBaseDigest], nbd)
		}
	}
}
