package buildhook

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/buildhook/build"
	"kiln/registry"
	"kiln/storage"
)

func TestSourceDateEpoch(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(registry.New(storage.NewInMemory(storage.Options{}), registry.Options{}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(64, 1)
	img, _ = mutate.CreatedAt(img, v1.Time{Time: time.Unix(1_700_000_000, 0)})
	ref, _ := name.ParseReference(host+"/python:3.8", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	job := func(args map[string]string, base *build.ImageRef) *build.Job {
		return &build.Job{Registry: host, Rule: &build.Rule{Args: args, FinalBase: base}}
	}
	python := &build.ImageRef{Repo: "python", Tag: "3.8"}
	for _, tt := range []struct {
		name string
		job  *build.Job
		want int64
		ok   bool
	}{
		{"the base's creation time", job(nil, python), 1_700_000_000, true},
		{"the rule's own", job(map[string]string{"SOURCE_DATE_EPOCH": "42"}, python), 42, true},
		{"a bad one of the rule's", job(map[string]string{"SOURCE_DATE_EPOCH": "-1"}, python), 0, false},
		{"no base here", job(nil, nil), 0, false},
		{"a base not pushed", job(nil, &build.ImageRef{Repo: "nope", Tag: "1"}), 0, false},
	} {
		if got, ok := sourceDateEpoch(t.Context(), tt.job); got != tt.want || ok != tt.ok {
			t.Errorf("%s: %d, %v; want %d, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
