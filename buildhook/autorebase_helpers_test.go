package buildhook

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"kiln/buildhook/build"
	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// autoKiln is an in-process kiln with build-on-push, autorebase on or off.
type autoKiln struct {
	store  *storage.Store
	moves  *TagMoves
	svc    *Service
	host   string
	cancel context.CancelFunc
}

func newAutoKiln(t *testing.T, autorebase bool, builds []config.Build, dir string) *autoKiln {
	t.Helper()
	store, moves := newTriggeredStore()
	srv := httptest.NewServer(registry.New(store, registry.Options{DeleteEnabled: true}))
	t.Cleanup(srv.Close)
	k := &autoKiln{store: store, moves: moves, host: strings.TrimPrefix(srv.URL, "http://")}
	for i := range builds {
		builds[i].Args = map[string]string{"REGISTRY": k.host}
	}
	rules, err := LoadRules(builds, dir, []string{k.host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k.start(t, autorebase, rules)
	return k
}

// start starts a build-on-push service on k's store (again, for a restart).
func (k *autoKiln) start(t *testing.T, autorebase bool, rules []*build.Rule) {
	t.Helper()
	k.svc, k.cancel = startService(t, ServiceOptions{Store: k.store, TagMoves: k.moves, Rules: rules, Registry: k.host, Hosts: []string{k.host},
		Concurrency: 2, AutoRebase: autorebase})
}

func (k *autoKiln) ref(t *testing.T, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(k.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func (k *autoKiln) push(t *testing.T, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(k.ref(t, repoTag), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d
}

func (k *autoKiln) image(t *testing.T, repoTag string) v1.Image {
	t.Helper()
	img, err := remote.Image(k.ref(t, repoTag))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func (k *autoKiln) waitIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.svc.WaitIdle(ctx); err != nil {
		t.Fatalf("builds did not finish: %v", err)
	}
}

func (k *autoKiln) records(t *testing.T) []*Record {
	t.Helper()
	recs, err := k.svc.Records().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func atRandomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(256, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// atDerived is base plus one layer of its own, annotated with its base as
// buildah, ko and crane do (when baseName is set; base's own annotations
// are kept either way).
func atDerived(t *testing.T, base v1.Image, baseName string) v1.Image {
	t.Helper()
	own, err := random.Layer(128, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, own)
	if err != nil {
		t.Fatal(err)
	}
	if baseName == "" {
		return img
	}
	bd, _ := base.Digest()
	return mutate.Annotations(img, map[string]string{
		build.AnnotationBaseName:   baseName,
		build.AnnotationBaseDigest: bd.String(),
		"org.example.keep":         "yes",
	}).(v1.Image)
}

func atLayers(t *testing.T, img v1.Image) []string {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, _ := l.Digest()
		out = append(out, d.String())
	}
	return out
}

func atAnnotations(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Annotations
}
