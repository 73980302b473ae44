package registry

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"kiln/storage"
)

func TestManifestRoundTrip(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		m, d := pushImage(t, srv, "app/web", "v1")
		for _, ref := range []string{"v1", string(d)} {
			r := do(t, srv, "GET", "/v2/app/web/manifests/"+ref, nil, "Accept", ociManifest)
			if r.status != 200 || !bytes.Equal(r.body, m) || r.header.Get("Content-Type") != ociManifest ||
				r.header.Get("Docker-Content-Digest") != string(d) {
				t.Errorf("GET %s: %d %v", ref, r.status, r.header)
			}
			h := do(t, srv, "HEAD", "/v2/app/web/manifests/"+ref, nil)
			if h.status != 200 || h.header.Get("Content-Length") != itoa(len(m)) || len(h.body) != 0 {
				t.Errorf("HEAD %s: %d %v", ref, h.status, h.header)
			}
		}
		// Exact bytes: whitespace and key order survive.
		cfg := pushBlob(t, srv, "app/web", []byte("{}"))
		odd := []byte("{\n  \"schemaVersion\": 2,\n  \"config\": {\"size\": 2, \"digest\": \"" + string(cfg) + "\", \"mediaType\": \"application/vnd.oci.image.config.v1+json\"},\n  \"layers\": []\n}\n")
		r := do(t, srv, "PUT", "/v2/app/web/manifests/odd", odd, "Content-Type", ociManifest)
		if r.status != 201 || r.header.Get("Location") != "/v2/app/web/manifests/"+string(digest.FromBytes(odd)) {
			t.Fatalf("PUT odd: %d %v %s", r.status, r.header, r.body)
		}
		if g := do(t, srv, "GET", "/v2/app/web/manifests/odd", nil); !bytes.Equal(g.body, odd) {
			t.Errorf("bytes changed: %q", g.body)
		}
		// Delete by tag removes only the tag.
		if r := do(t, srv, "DELETE", "/v2/app/web/manifests/v1", nil); r.status != 202 {
			t.Fatalf("delete tag: %d", r.status)
		}
		if r := do(t, srv, "GET", "/v2/app/web/manifests/v1", nil); r.status != 404 || r.errorCode() != "MANIFEST_UNKNOWN" {
			t.Errorf("deleted tag: %d", r.status)
		}
		if r := do(t, srv, "GET", "/v2/app/web/manifests/"+string(d), nil); r.status != 200 {
			t.Errorf("manifest gone with its tag: %d", r.status)
		}
		// Delete by digest removes the tags pointing to it.
		do(t, srv, "PUT", "/v2/app/web/manifests/again", m, "Content-Type", ociManifest)
		if r := do(t, srv, "DELETE", "/v2/app/web/manifests/"+string(d), nil); r.status != 202 {
			t.Fatalf("delete digest: %d", r.status)
		}
		for _, ref := range []string{"again", string(d)} {
			if r := do(t, srv, "GET", "/v2/app/web/manifests/"+ref, nil); r.status != 404 {
				t.Errorf("GET %s after delete: %d", ref, r.status)
			}
		}
	})
}

func TestManifestBadInput(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, store *storage.Store) {
		cfg := pushBlob(t, srv, "bad", []byte("{}"))
		good := imageManifest(cfg, 2)
		missing := imageManifest(cfg, 2, digest.FromString("not pushed"))
		index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` +
			string(digest.FromString("no child")) + `","size":10}]}`)
		huge := append([]byte(`{"schemaVersion":2,"annotations":{"x":"`), bytes.Repeat([]byte("a"), 4<<20)...)
		huge = append(huge, []byte(`"}}`)...)
		for _, tc := range []struct {
			name, path, contentType string
			body                    []byte
			status                  int
			code                    string
		}{
			{"malformed JSON", "/v2/bad/manifests/t", ociManifest, []byte(`{"schemaVersion":2,`), 400, "MANIFEST_INVALID"},
			{"schema 1", "/v2/bad/manifests/t", ociManifest, []byte(`{"schemaVersion":1}`), 400, "MANIFEST_INVALID"},
			{"unknown media type", "/v2/bad/manifests/t", "application/x-unknown", good, 400, "MANIFEST_INVALID"},
			{"media type mismatch", "/v2/bad/manifests/t", "application/vnd.oci.image.index.v1+json", good, 400, "MANIFEST_INVALID"},
			{"no config", "/v2/bad/manifests/t", ociManifest, []byte(`{"schemaVersion":2,"layers":[]}`), 400, "MANIFEST_INVALID"},
			{"bad descriptor digest", "/v2/bad/manifests/t", ociManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:zz","size":1}}`), 400, "MANIFEST_INVALID"},
			{"missing layer", "/v2/bad/manifests/t", ociManifest, missing, 400, "MANIFEST_BLOB_UNKNOWN"},
			{"missing child", "/v2/bad/manifests/t", "application/vnd.oci.image.index.v1+json", index, 400, "MANIFEST_BLOB_UNKNOWN"},
			{"digest mismatch", "/v2/bad/manifests/" + string(digest.FromString("x")), ociManifest, good, 400, "DIGEST_INVALID"},
			{"oversized", "/v2/bad/manifests/t", ociManifest, huge, 413, "MANIFEST_INVALID"},
			{"invalid tag", "/v2/bad/manifests/-tag", ociManifest, good, 400, "MANIFEST_INVALID"},
			{"tag too long", "/v2/bad/manifests/" + strings.Repeat("t", 129), ociManifest, good, 400, "MANIFEST_INVALID"},
			{"invalid tag param", "/v2/bad/manifests/" + string(digest.FromBytes(good)) + "?tag=.x", ociManifest, good, 400, "MANIFEST_INVALID"},
			{"traversal name", "/v2/../etc/manifests/t", ociManifest, good, 400, "NAME_INVALID"},
			{"encoded traversal", "/v2/%2e%2e/etc/manifests/t", ociManifest, good, 400, "NAME_INVALID"},
			{"uppercase name", "/v2/Bad/manifests/t", ociManifest, good, 400, "NAME_INVALID"},
			{"empty component", "/v2/a//b/manifests/t", ociManifest, good, 400, "NAME_INVALID"},
			{"NUL in name", "/v2/a%00b/manifests/t", ociManifest, good, 400, "NAME_INVALID"},
			{"name too long", "/v2/" + strings.Repeat("a", 256) + "/manifests/t", ociManifest, good, 400, "NAME_INVALID"},
		} {
			r := do(t, srv, "PUT", tc.path, tc.body, "Content-Type", tc.contentType)
			if r.status != tc.status || r.errorCode() != tc.code {
				t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
			}
		}
		// Nothing was written: no tag, no manifest.
		if tags, err := store.Tags(t.Context(), "bad"); err != nil || len(tags) != 0 {
			t.Errorf("tags after refused pushes: %v %v", tags, err)
		}
		if ok, _ := store.HasManifest(t.Context(), "bad", digest.FromBytes(good)); ok {
			t.Error("refused manifest stored")
		}
		// The same manifest with a correct digest is accepted.
		if r := do(t, srv, "PUT", "/v2/bad/manifests/"+string(digest.FromBytes(good))+"?tag=a&tag=b", good, "Content-Type", ociManifest); r.status != 201 || len(r.header.Values("OCI-Tag")) != 2 {
			t.Errorf("good manifest by digest with tags: %d %v %s", r.status, r.header, r.body)
		}
	})
}

func TestReferrers(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		_, subject := pushImage(t, srv, "ref", "v1")
		empty := pushBlob(t, srv, "ref", []byte("{}"))
		artifact := func(artifactType, note string) digest.Digest {
			m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"` + artifactType + `",` +
				`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + string(empty) + `","size":2},"layers":[],` +
				`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + string(subject) + `","size":1},` +
				`"annotations":{"note":"` + note + `"}}`)
			d := digest.FromBytes(m)
			r := do(t, srv, "PUT", "/v2/ref/manifests/"+string(d), m, "Content-Type", ociManifest)
			if r.status != 201 || r.header.Get("OCI-Subject") != string(subject) {
				t.Fatalf("push referrer: %d %v %s", r.status, r.header, r.body)
			}
			return d
		}
		sbom := artifact("application/vnd.example.sbom", "s")
		sig := artifact("application/vnd.example.sig", "g")
		list := func(query string) ([]v1.Descriptor, response) {
			r := do(t, srv, "GET", "/v2/ref/referrers/"+string(subject)+query, nil)
			var idx v1.Index
			if err := json.Unmarshal(r.body, &idx); err != nil || r.status != 200 || r.header.Get("Content-Type") != v1.MediaTypeImageIndex {
				t.Fatalf("referrers: %d %s %v", r.status, r.body, err)
			}
			return idx.Manifests, r
		}
		all, r := list("")
		if len(all) != 2 || r.header.Get("OCI-Filters-Applied") != "" {
			t.Fatalf("referrers: %+v", all)
		}
		for _, d := range all {
			if d.Annotations["note"] == "" || d.ArtifactType == "" || d.Size == 0 {
				t.Errorf("descriptor lacks fields: %+v", d)
			}
		}
		only, r := list("?artifactType=application/vnd.example.sig")
		if len(only) != 1 || only[0].Digest != sig || r.header.Get("OCI-Filters-Applied") != "artifactType" {
			t.Errorf("filtered: %+v %v", only, r.header)
		}
		// Deleting a referrer removes it from the list.
		do(t, srv, "DELETE", "/v2/ref/manifests/"+string(sbom), nil)
		if rest, _ := list(""); len(rest) != 1 || rest[0].Digest != sig {
			t.Errorf("after delete: %+v", rest)
		}
		// A subject never pushed has an empty list.
		r2 := do(t, srv, "GET", "/v2/ref/referrers/"+string(digest.FromString("nothing")), nil)
		if r2.status != 200 || !strings.Contains(string(r2.body), `"manifests":[]`) {
			t.Errorf("unknown subject: %d %s", r2.status, r2.body)
		}
	})
}

func TestTagsAndCatalogPagination(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		m, _ := pushImage(t, srv, "pages", "t0")
		for _, tag := range []string{"b", "a", "c", "d"} {
			do(t, srv, "PUT", "/v2/pages/manifests/"+tag, m, "Content-Type", ociManifest)
		}
		r := do(t, srv, "GET", "/v2/pages/tags/list?n=2", nil)
		if string(r.body) != `{"name":"pages","tags":["a","b"]}` || r.header.Get("Link") != `</v2/pages/tags/list?last=b&n=2>; rel="next"` {
			t.Fatalf("page 1: %s %q", r.body, r.header.Get("Link"))
		}
		r = do(t, srv, "GET", "/v2/pages/tags/list?n=2&last=d", nil)
		if string(r.body) != `{"name":"pages","tags":["t0"]}` || r.header.Get("Link") != "" {
			t.Errorf("last page: %s %q", r.body, r.header.Get("Link"))
		}
		if r := do(t, srv, "GET", "/v2/pages/tags/list", nil); string(r.body) != `{"name":"pages","tags":["a","b","c","d","t0"]}` {
			t.Errorf("all: %s", r.body)
		}
		if r := do(t, srv, "GET", "/v2/pages/tags/list?n=0", nil); string(r.body) != `{"name":"pages","tags":[]}` {
			t.Errorf("n=0: %s", r.body)
		}
		if r := do(t, srv, "GET", "/v2/pages/tags/list?n=-1", nil); r.status != 400 {
			t.Errorf("n=-1: %d", r.status)
		}
		if r := do(t, srv, "GET", "/v2/nosuch/tags/list", nil); r.status != 404 || r.errorCode() != "NAME_UNKNOWN" {
			t.Errorf("unknown repo: %d %s", r.status, r.body)
		}
		pushImage(t, srv, "pages/deep/er", "x")
		pushBlob(t, srv, "blobonly", []byte("b"))
		r = do(t, srv, "GET", "/v2/_catalog?n=2", nil)
		if string(r.body) != `{"repositories":["blobonly","pages"]}` || !strings.Contains(r.header.Get("Link"), "last=pages") {
			t.Errorf("catalog: %s %q", r.body, r.header.Get("Link"))
		}
		if r := do(t, srv, "GET", "/v2/_catalog?last=pages", nil); string(r.body) != `{"repositories":["pages/deep/er"]}` {
			t.Errorf("catalog rest: %s", r.body)
		}
	})
}

func TestManifestAcceptNegotiation(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		const schema2 = "application/vnd.docker.distribution.manifest.v2+json"
		const list = "application/vnd.docker.distribution.manifest.list.v2+json"
		cfg := pushBlob(t, srv, "neg", []byte("{}"))
		child := []byte(`{"schemaVersion":2,"mediaType":"` + schema2 + `","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + string(cfg) + `","size":2},"layers":[]}`)
		if r := do(t, srv, "PUT", "/v2/neg/manifests/amd64", child, "Content-Type", schema2); r.status != 201 {
			t.Fatalf("child: %d %s", r.status, r.body)
		}
		cd := digest.FromBytes(child)
		ml := []byte(`{"schemaVersion":2,"mediaType":"` + list + `","manifests":[{"mediaType":"` + schema2 + `","digest":"` + string(cd) + `","size":` + itoa(len(child)) + `,"platform":{"architecture":"amd64","os":"linux"}}]}`)
		if r := do(t, srv, "PUT", "/v2/neg/manifests/multi", ml, "Content-Type", list); r.status != 201 {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		for _, tc := range []struct {
			accept, wantType string
			status           int
		}{
			{"", list, 200},
			{"*/*", list, 200},
			{list + ", " + schema2, list, 200},
			{schema2 + "; q=0.5", schema2, 200}, // an old client gets the linux/amd64 manifest
			{"application/vnd.oci.image.index.v1+json", "", 404},
		} {
			r := do(t, srv, "GET", "/v2/neg/manifests/multi", nil, "Accept", tc.accept)
			if r.status != tc.status || (tc.status == 200 && r.header.Get("Content-Type") != tc.wantType) {
				t.Errorf("Accept %q: %d %q", tc.accept, r.status, r.header.Get("Content-Type"))
			}
		}
	})
}
