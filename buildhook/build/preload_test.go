package build

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/registry"
	"kiln/storage"
)

// A build's push puts each new small blob in one request and mounts the
// base's layers, instead of go-containerregistry's three requests per
// blob (a durable session on kiln), asks for each blob once, and the image
// arrives whole.
func TestPushImageOneRequestPerBlob(t *testing.T) {
	reg := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{})
	var mu sync.Mutex
	var requests []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	base, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	baseRef, _ := name.NewTag(host+"/base:1", name.Insecure)
	if err := remote.Write(baseRef, base); err != nil {
		t.Fatal(err)
	}
	job := &Job{Registry: host}
	rem := NewRemote(context.Background(), job, nil, nil)
	pulled, err := remote.Image(baseRef, rem.Options...) // its layers are mountable
	if err != nil {
		t.Fatal(err)
	}
	layer, err := random.Layer(1024, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(pulled, layer)
	if err != nil {
		t.Fatal(err)
	}
	staging, _ := name.NewTag(host+"/app:staging", name.Insecure)
	mu.Lock()
	requests = nil
	mu.Unlock()
	d, err := rem.PushImage(io.Discard, staging, img)
	if err != nil {
		t.Fatal(err)
	}

	var patches, posts, heads, puts []string
	mu.Lock()
	for _, r := range requests {
		switch {
		case strings.HasPrefix(r, "PATCH "):
			patches = append(patches, r)
		case strings.HasPrefix(r, "POST "):
			posts = append(posts, r)
		case strings.HasPrefix(r, "HEAD ") && strings.Contains(r, "/blobs/"):
			heads = append(heads, r)
		case strings.HasPrefix(r, "PUT ") && strings.Contains(r, "/manifests/"):
			puts = append(puts, r)
		}
	}
	mu.Unlock()
	if len(heads) != 4 || len(puts) != 1 {
		t.Errorf("%d blob HEADs and %d manifest PUTs, want 4 and 1: %v", len(heads), len(puts), requests)
	}
	if len(patches) != 0 {
		t.Errorf("chunked uploads: %v", patches)
	}
	// Two base layers mounted, the new layer and the config uploaded.
	if len(posts) != 4 {
		t.Errorf("%d POSTs, want 4 (2 mounts, 2 monolithic uploads): %v", len(posts), posts)
	}
	mounts := 0
	for _, p := range posts {
		if strings.Contains(p, "mount=") {
			mounts++
		}
	}
	if mounts != 2 {
		t.Errorf("%d mounts, want 2: %v", mounts, posts)
	}

	readBack(t, staging, d)

	// A new layer too large for one request: go-containerregistry pushes
	// what is left.
	big, err := random.Layer(monolithicMax+1, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(pulled, big)
	if err != nil {
		t.Fatal(err)
	}
	d, err = rem.PushImage(io.Discard, staging, img)
	if err != nil {
		t.Fatal(err)
	}
	readBack(t, staging, d)
}

// readBack reads ref's image whole, every blob verified, and checks that
// it is want.
func readBack(t *testing.T, ref name.Reference, want digest.Digest) {
	t.Helper()
	got, err := remote.Image(ref, remote.WithTransport(http.DefaultTransport))
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd.String() != string(want) {
		t.Fatalf("%s is %s, pushed %s", ref, gd, want)
	}
	if _, err := got.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	ls, _ := got.Layers()
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
}
