package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// recorder is an http.RoundTripper that remembers every request's method,
// URL and response status.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	Method string
	URL    *url.URL
	Status int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL, status})
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) reset() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

func isStatus(err error, code int) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == code
}

// TestGoContainerRegistry drives the registry with go-containerregistry's
// remote and crane packages: images, indexes, tag pagination, the catalog,
// cross-repository mounts and deletes.
func TestGoContainerRegistry(t *testing.T) {
	reg := needRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rec := &recorder{}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(rec)}
	copts := []crane.Option{crane.Insecure, crane.WithContext(ctx), crane.WithTransport(rec)}
	parse := func(s string) name.Reference {
		t.Helper()
		r, err := name.ParseReference(reg.Addr+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	repoName := func(s string) name.Repository {
		t.Helper()
		r, err := name.NewRepository(reg.Addr+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	repoA := reg.Repo("ggcr", "a")
	repoB := reg.Repo("ggcr", "b")
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	imgDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var pulledA v1.Image

	if !t.Run("image", func(t *testing.T) {
		if err := remote.Write(parse(repoA+":v1"), img, opts...); err != nil {
			t.Fatalf("remote.Write: %v", err)
		}
		got, err := remote.Image(parse(repoA+":v1"), opts...)
		if err != nil {
			t.Fatalf("remote.Image: %v", err)
		}
		if d, _ := got.Digest(); d != imgDigest {
			t.Errorf("pulled digest %s, pushed %s", d, imgDigest)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("validate.Image of the pulled image: %v", err)
		}
		if d, err := crane.Digest(reg.Addr+"/"+repoA+":v1", copts...); err != nil || d != imgDigest.String() {
			t.Errorf("crane.Digest = %q, %v; want %s", d, err, imgDigest)
		}
		pulledA = got
	}) {
		t.FailNow()
	}

	t.Run("index", func(t *testing.T) {
		idx, err := random.Index(1024, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := idx.Digest()
		if err := remote.WriteIndex(parse(repoA+":index"), idx, opts...); err != nil {
			t.Fatalf("remote.WriteIndex: %v", err)
		}
		got, err := remote.Index(parse(repoA+":index"), opts...)
		if err != nil {
			t.Fatalf("remote.Index: %v", err)
		}
		if d, _ := got.Digest(); d != want {
			t.Errorf("pulled index digest %s, pushed %s", d, want)
		}
		if err := validate.Index(got); err != nil {
			t.Errorf("validate.Index of the pulled index: %v", err)
		}
		desc, err := remote.Get(parse(repoA+"@"+want.String()), opts...)
		if err != nil {
			t.Fatalf("remote.Get by digest: %v", err)
		}
		if string(desc.MediaType) != "application/vnd.oci.image.index.v1+json" {
			t.Errorf("index served as %q", desc.MediaType)
		}
	})

	t.Run("cross-repo mount", func(t *testing.T) {
		rec.reset()
		// Writing an image pulled from repoA into repoB mounts its layers.
		if err := remote.Write(parse(repoB+":v1"), pulledA, opts...); err != nil {
			t.Fatalf("remote.Write to %s: %v", repoB, err)
		}
		mounted := 0
		for _, r := range rec.reset() {
			q := r.URL.Query()
			if r.Method == http.MethodPost && q.Get("mount") != "" {
				if q.Get("from") != repoA {
					t.Errorf("mount request from %q, want %q", q.Get("from"), repoA)
				}
				if r.Status == http.StatusCreated {
					mounted++
				} else {
					t.Errorf("POST %s answered %d, want 201 Created (blob exists in %s)", r.URL, r.Status, repoA)
				}
			}
		}
		layers, _ := img.Layers()
		if mounted < len(layers) {
			t.Errorf("%d blobs mounted from %s, want at least %d (one per layer)", mounted, repoA, len(layers))
		}
		got, err := remote.Image(parse(repoB+":v1"), opts...)
		if err != nil {
			t.Fatalf("remote.Image: %v", err)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("validate.Image in %s: %v", repoB, err)
		}

		// A raw mount into a third repository.
		repoC := reg.Repo("ggcr", "c")
		l := layers[0]
		ld, _ := l.Digest()
		resp, body := doHTTP(t, http.MethodPost, fmt.Sprintf("%s/v2/%s/blobs/uploads/?mount=%s&from=%s", reg.URL, repoC, ld, repoA), nil, nil)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("POST mount into %s: %s %s", repoC, resp.Status, body)
		}
		if loc := resp.Header.Get("Location"); loc == "" {
			t.Errorf("POST mount: no Location header")
		}
		if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != ld.String() {
			t.Errorf("POST mount: Docker-Content-Digest %s, want %s", h, ld)
		}
		size, _ := l.Size()
		checkBlob(t, reg, repoC, ld.String(), size)

		// crane.Copy between repositories.
		repoE := reg.Repo("ggcr", "e")
		if err := crane.Copy(reg.Addr+"/"+repoA+":v1", reg.Addr+"/"+repoE+":copied", copts...); err != nil {
			t.Fatalf("crane.Copy: %v", err)
		}
		if d, err := crane.Digest(reg.Addr+"/"+repoE+":copied", copts...); err != nil || d != imgDigest.String() {
			t.Errorf("crane.Digest of the copy = %q, %v; want %s", d, err, imgDigest)
		}
	})

	t.Run("tag pagination", func(t *testing.T) {
		repoT := reg.Repo("ggcr", "tags")
		var want []string
		for i := 0; i < 23; i++ {
			tag := fmt.Sprintf("t%02d", i)
			want = append(want, tag)
			if i == 0 {
				// The first push uploads the blobs; the other tags only PUT the manifest.
				if err := remote.Write(parse(repoT+":"+tag), img, opts...); err != nil {
					t.Fatalf("remote.Write %s: %v", tag, err)
				}
				continue
			}
			if err := remote.Tag(parse(repoT+":"+tag).(name.Tag), img, opts...); err != nil {
				t.Fatalf("remote.Tag %s: %v", tag, err)
			}
		}
		rec.reset()
		got, err := remote.List(repoName(repoT), append(opts, remote.WithPageSize(5))...)
		if err != nil {
			t.Fatalf("remote.List: %v", err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("remote.List = %v, want %v", got, want)
		}
		pages := 0
		for _, r := range rec.reset() {
			if strings.HasSuffix(r.URL.Path, "/tags/list") {
				pages++
			}
		}
		if pages < 5 {
			t.Errorf("remote.List with page size 5 made %d requests for 23 tags; want at least 5 (n and Link pagination)", pages)
		}

		// The same by hand: n, last and the Link header.
		list := func(query string) ([]string, http.Header) {
			resp, body := doHTTP(t, http.MethodGet, reg.URL+"/v2/"+repoT+"/tags/list"+query, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET tags/list%s: %s %s", query, resp.Status, body)
			}
			var tl struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(body, &tl); err != nil {
				t.Fatalf("GET tags/list%s: %v: %s", query, err, body)
			}
			if tl.Name != repoT {
				t.Errorf("GET tags/list%s: name %q, want %q", query, tl.Name, repoT)
			}
			return tl.Tags, resp.Header
		}
		tags, h := list("?n=5")
		if !slices.Equal(tags, want[:5]) {
			t.Errorf("tags/list?n=5 = %v, want %v", tags, want[:5])
		}
		// The spec lets a registry omit Link, but clients (ggcr, oras,
		// containers/image) only paginate by following it.
		if link := h.Get("Link"); !strings.Contains(link, `rel="next"`) {
			t.Errorf("tags/list?n=5: Link header %q, want a rel=\"next\" link", link)
		}
		tags, _ = list("?n=5&last=t04")
		if !slices.Equal(tags, want[5:10]) {
			t.Errorf("tags/list?n=5&last=t04 = %v, want %v", tags, want[5:10])
		}
		tags, h = list("?n=5&last=t20")
		if !slices.Equal(tags, want[21:]) {
			t.Errorf("tags/list?n=5&last=t20 = %v, want %v", tags, want[21:])
		}
		if link := h.Get("Link"); link != "" {
			t.Errorf("tags/list?n=5&last=t20 (the last page): Link header %q, want none", link)
		}
		tags, h = list("?n=0")
		if len(tags) != 0 || h.Get("Link") != "" {
			t.Errorf("tags/list?n=0 = %v, Link %q; want an empty list and no Link", tags, h.Get("Link"))
		}
		tags, _ = list("")
		if !slices.Equal(tags, want) {
			t.Errorf("tags/list = %v, want %v", tags, want)
		}
	})

	t.Run("catalog", func(t *testing.T) {
		repos, err := crane.Catalog(reg.Addr, copts...)
		if err != nil {
			t.Fatalf("crane.Catalog: %v", err)
		}
		for _, r := range []string{repoA, repoB} {
			if !slices.Contains(repos, r) {
				t.Errorf("catalog lacks %s (has %d repositories)", r, len(repos))
			}
		}
		if !slices.IsSorted(repos) {
			t.Errorf("catalog is not sorted")
		}
		regName, err := name.NewRegistry(reg.Addr, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		page, err := remote.CatalogPage(regName, "", 2, opts...)
		if err != nil {
			t.Fatalf("remote.CatalogPage n=2: %v", err)
		}
		if len(page) != 2 {
			t.Errorf("catalog page with n=2 has %d repositories: %v", len(page), page)
		}
		// The page after repoA starts after it.
		page, err = remote.CatalogPage(regName, repoA, 1, opts...)
		if err != nil {
			t.Fatalf("remote.CatalogPage last=%s: %v", repoA, err)
		}
		if len(page) != 1 || page[0] <= repoA {
			t.Errorf("catalog page after %s: %v, want one repository sorting after it", repoA, page)
		}
	})

	t.Run("delete", func(t *testing.T) {
		repoD := reg.Repo("ggcr", "del")
		for _, tag := range []string{"keep", "gone"} {
			if err := remote.Write(parse(repoD+":"+tag), img, opts...); err != nil {
				t.Fatalf("remote.Write %s: %v", tag, err)
			}
		}
		byDigest := parse(repoD + "@" + imgDigest.String())

		// Delete a tag: the tag goes, the manifest and other tags stay.
		if err := remote.Delete(parse(repoD+":gone"), opts...); err != nil {
			t.Errorf("deleting tag gone: %v", err)
		}
		if _, err := remote.Head(parse(repoD+":gone"), opts...); !isStatus(err, http.StatusNotFound) {
			t.Errorf("HEAD of the deleted tag: %v, want 404", err)
		}
		if _, err := remote.Head(parse(repoD+":keep"), opts...); err != nil {
			t.Errorf("HEAD of the other tag after deleting a tag: %v", err)
		}
		if _, err := remote.Head(byDigest, opts...); err != nil {
			t.Errorf("HEAD by digest after deleting a tag: %v", err)
		}
		if tags, err := remote.List(repoName(repoD), opts...); err != nil || !slices.Equal(tags, []string{"keep"}) {
			t.Errorf("tags after deleting gone = %v, %v; want [keep]", tags, err)
		}

		// Delete the manifest by digest.
		if err := remote.Delete(byDigest, opts...); err != nil {
			t.Fatalf("deleting manifest %s: %v", imgDigest, err)
		}
		if _, err := remote.Head(byDigest, opts...); !isStatus(err, http.StatusNotFound) {
			t.Errorf("HEAD of the deleted manifest: %v, want 404", err)
		}
		resp, _ := doHTTP(t, http.MethodGet, reg.URL+"/v2/"+repoD+"/manifests/"+imgDigest.String(), http.Header{"Accept": {acceptManifests}}, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET of the deleted manifest: %s, want 404", resp.Status)
		}
		// Tags pointing to a deleted manifest go with it.
		if _, err := remote.Head(parse(repoD+":keep"), opts...); !isStatus(err, http.StatusNotFound) {
			t.Errorf("HEAD of a tag of the deleted manifest: %v, want 404", err)
		}
		// Deleting it again is a 404 (MANIFEST_UNKNOWN).
		if err := remote.Delete(byDigest, opts...); !isStatus(err, http.StatusNotFound) {
			t.Errorf("deleting the manifest again: %v, want 404", err)
		}
		// The same image in repoA is untouched.
		if _, err := remote.Head(parse(repoA+":v1"), opts...); err != nil {
			t.Errorf("HEAD %s:v1 after deleting the manifest from %s: %v", repoA, repoD, err)
		}
	})
}
