package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"
)

const (
	sbomType      = "application/vnd.example.sbom.v1"
	signatureType = "application/vnd.example.signature.v1"
	createdKey    = "org.opencontainers.image.created"
)

// referrersIndex is a referrers response; Manifests is kept raw first so an
// empty list can be told from a null one.
type referrersIndex struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     json.RawMessage   `json:"manifests"`
	Annotations   map[string]string `json:"annotations"`
	list          []ocispec.Descriptor
	byDigest      map[string]ocispec.Descriptor
}

// getReferrers calls GET /v2/<repo>/referrers/<dgst>[?query] and checks the
// parts of the answer every referrers response must have.
func getReferrers(t *testing.T, reg *registryEnv, repo, dgst, query string) (*referrersIndex, http.Header) {
	t.Helper()
	url := reg.URL + "/v2/" + repo + "/referrers/" + dgst + query
	resp, body := doHTTP(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, want 200: %s", url, resp.Status, tail(string(body), 5))
	}
	if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
		t.Errorf("GET %s: Content-Type %q, want %q", url, ct, ocispec.MediaTypeImageIndex)
	}
	var idx referrersIndex
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("GET %s: not an image index: %v: %s", url, err, body)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("GET %s: schemaVersion %d mediaType %q, want 2 and %q", url, idx.SchemaVersion, idx.MediaType, ocispec.MediaTypeImageIndex)
	}
	if s := strings.TrimSpace(string(idx.Manifests)); !strings.HasPrefix(s, "[") {
		t.Errorf("GET %s: manifests is %q, want a list (empty when there are no referrers)", url, s)
	} else if err := json.Unmarshal(idx.Manifests, &idx.list); err != nil {
		t.Fatalf("GET %s: manifests: %v", url, err)
	}
	idx.byDigest = map[string]ocispec.Descriptor{}
	for _, d := range idx.list {
		if _, dup := idx.byDigest[d.Digest.String()]; dup {
			t.Errorf("GET %s: %s listed twice", url, d.Digest)
		}
		idx.byDigest[d.Digest.String()] = d
	}
	return &idx, resp.Header
}

func (r *referrersIndex) digests() []string {
	out := slices.Sorted(maps.Keys(r.byDigest))
	if out == nil {
		out = []string{}
	}
	return out
}

// putManifest PUTs a manifest and returns the response.
func putManifest(t *testing.T, reg *registryEnv, repo, ref, mediaType string, body []byte) *http.Response {
	t.Helper()
	url := reg.URL + "/v2/" + repo + "/manifests/" + ref
	resp, b := doHTTP(t, http.MethodPut, url, http.Header{"Content-Type": {mediaType}}, body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: %s, want 201: %s", url, resp.Status, tail(string(b), 5))
	}
	if dcd := resp.Header.Get("Docker-Content-Digest"); dcd != sha256Digest(body) {
		t.Errorf("PUT %s: Docker-Content-Digest %q, want %s", url, dcd, sha256Digest(body))
	}
	if resp.Header.Get("Location") == "" {
		t.Errorf("PUT %s: no Location header", url)
	}
	return resp
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func descOf(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// TestORAS pushes an image and artifacts that refer to it (OCI 1.1 subject)
// with oras-go and raw HTTP, and checks the referrers API: the OCI-Subject
// header, listing, the artifactType filter, and deletes.
func TestORAS(t *testing.T) {
	reg := needRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	repoName := reg.Repo("oras", "app")
	newRepo := func() *remote.Repository {
		t.Helper()
		r, err := remote.NewRepository(reg.Addr + "/" + repoName)
		if err != nil {
			t.Fatal(err)
		}
		r.PlainHTTP = true
		return r
	}
	repo := newRepo()
	pushBlob := func(mediaType string, b []byte) ocispec.Descriptor {
		t.Helper()
		d, err := oras.PushBytes(ctx, repo, mediaType, b)
		if err != nil {
			t.Fatalf("pushing a %s blob: %v", mediaType, err)
		}
		return d
	}

	// The subject: a small image, tagged v1.
	config := pushBlob(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	layer := pushBlob(ocispec.MediaTypeImageLayer, []byte("kiln e2e layer "+reg.RunID))
	subject, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{
		ConfigDescriptor:    &config,
		Layers:              []ocispec.Descriptor{layer},
		ManifestAnnotations: map[string]string{createdKey: "2024-01-01T00:00:00Z"},
	})
	if err != nil {
		t.Fatalf("pushing the subject image: %v", err)
	}
	if err := repo.Tag(ctx, subject, "v1"); err != nil {
		t.Fatalf("tagging the subject: %v", err)
	}
	subjectDesc := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	emptyCfg := pushBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	emptyCfg = ocispec.Descriptor{MediaType: emptyCfg.MediaType, Digest: emptyCfg.Digest, Size: emptyCfg.Size}

	// Artifact 1, an SBOM, by raw HTTP PUT: the answer must carry OCI-Subject.
	sbomLayer := pushBlob("application/spdx+json", []byte(`{"spdxVersion":"SPDX-2.3","name":"kiln-e2e"}`))
	sbomAnn := map[string]string{createdKey: "2024-01-02T00:00:00Z", "org.example.sbom.format": "json"}
	sbomBody := mustJSON(t, ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: sbomType,
		Config:       emptyCfg,
		Layers:       []ocispec.Descriptor{{MediaType: sbomLayer.MediaType, Digest: sbomLayer.Digest, Size: sbomLayer.Size}},
		Subject:      &subjectDesc,
		Annotations:  sbomAnn,
	})
	sbom := descOf(ocispec.MediaTypeImageManifest, sbomBody)
	resp := putManifest(t, reg, repoName, sbom.Digest.String(), ocispec.MediaTypeImageManifest, sbomBody)
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Errorf("PUT of a manifest with a subject: OCI-Subject header %q, want %s", got, subject.Digest)
	}

	// Artifact 2, a signature, pushed by oras (which decides from the
	// OCI-Subject header whether it must maintain the referrers tag itself).
	sigLayer := pushBlob("application/vnd.example.signature.payload", []byte("signed: "+subject.Digest.String()))
	sigAnn := map[string]string{createdKey: "2024-01-03T00:00:00Z", "org.example.signature.fingerprint": "abcd"}
	sig, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, signatureType, oras.PackManifestOptions{
		Subject:             &subjectDesc,
		Layers:              []ocispec.Descriptor{sigLayer},
		ManifestAnnotations: sigAnn,
	})
	if err != nil {
		t.Fatalf("oras.PackManifest with a subject: %v", err)
	}
	referrersTag := strings.Replace(subject.Digest.String(), ":", "-", 1)
	if r, _ := doHTTP(t, http.MethodHead, reg.URL+"/v2/"+repoName+"/manifests/"+referrersTag, http.Header{"Accept": {acceptManifests}}, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD of the referrers tag %s: %s; want 404: oras fell back to the referrers tag schema, i.e. it saw no OCI-Subject header", referrersTag, r.Status)
	}

	// Artifact 3, an index with a subject and no artifactType.
	indexAnn := map[string]string{createdKey: "2024-01-04T00:00:00Z"}
	indexBody := mustJSON(t, ocispec.Index{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageIndex,
		Manifests:   []ocispec.Descriptor{sbom},
		Subject:     &subjectDesc,
		Annotations: indexAnn,
	})
	index := descOf(ocispec.MediaTypeImageIndex, indexBody)
	resp = putManifest(t, reg, repoName, index.Digest.String(), ocispec.MediaTypeImageIndex, indexBody)
	if got := resp.Header.Get("OCI-Subject"); got != subject.Digest.String() {
		t.Errorf("PUT of an index with a subject: OCI-Subject header %q, want %s", got, subject.Digest)
	}

	// An unrelated manifest without a subject must not be listed.
	plainBody := mustJSON(t, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: sbomType, Config: emptyCfg, Layers: []ocispec.Descriptor{},
		Annotations: map[string]string{createdKey: "2024-01-05T00:00:00Z"},
	})
	if r := putManifest(t, reg, repoName, "plain", ocispec.MediaTypeImageManifest, plainBody); r.Header.Get("OCI-Subject") != "" {
		t.Errorf("PUT of a manifest without a subject: OCI-Subject %q, want none", r.Header.Get("OCI-Subject"))
	}

	want := map[string]struct {
		desc         ocispec.Descriptor
		artifactType string
		annotations  map[string]string
	}{
		sbom.Digest.String():  {sbom, sbomType, sbomAnn},
		sig.Digest.String():   {sig, signatureType, sigAnn},
		index.Digest.String(): {index, "", indexAnn},
	}

	t.Run("list", func(t *testing.T) {
		got, _ := getReferrers(t, reg, repoName, subject.Digest.String(), "")
		if !slices.Equal(got.digests(), slices.Sorted(maps.Keys(want))) {
			t.Fatalf("referrers of the subject: %v, want %v", got.digests(), slices.Sorted(maps.Keys(want)))
		}
		for dg, w := range want {
			d := got.byDigest[dg]
			if d.MediaType != w.desc.MediaType || d.Size != w.desc.Size {
				t.Errorf("referrer %s: mediaType %q size %d, want %q %d", dg, d.MediaType, d.Size, w.desc.MediaType, w.desc.Size)
			}
			if d.ArtifactType != w.artifactType {
				t.Errorf("referrer %s: artifactType %q, want %q", dg, d.ArtifactType, w.artifactType)
			}
			if !maps.Equal(d.Annotations, w.annotations) {
				t.Errorf("referrer %s: annotations %v, want the manifest's %v", dg, d.Annotations, w.annotations)
			}
		}
	})

	t.Run("artifactType filter", func(t *testing.T) {
		got, h := getReferrers(t, reg, repoName, subject.Digest.String(), "?artifactType="+sbomType)
		if !slices.Equal(got.digests(), []string{sbom.Digest.String()}) {
			t.Errorf("referrers filtered by %s: %v, want only %s", sbomType, got.digests(), sbom.Digest)
		}
		if f := h.Get("OCI-Filters-Applied"); f != "artifactType" {
			t.Errorf("filtered referrers: OCI-Filters-Applied %q, want \"artifactType\"", f)
		}
		got, h = getReferrers(t, reg, repoName, subject.Digest.String(), "?artifactType=application/vnd.example.none.v1")
		if len(got.list) != 0 {
			t.Errorf("referrers filtered by an unused type: %v, want none", got.digests())
		}
		if f := h.Get("OCI-Filters-Applied"); f != "artifactType" {
			t.Errorf("filtered referrers (no match): OCI-Filters-Applied %q, want \"artifactType\"", f)
		}
	})

	t.Run("oras Referrers", func(t *testing.T) {
		r := newRepo()
		// Force the referrers API: no client-side fallback to the tag schema.
		if err := r.SetReferrersCapability(true); err != nil {
			t.Fatal(err)
		}
		collect := func(artifactType string) []string {
			var out []string
			err := r.Referrers(ctx, subjectDesc, artifactType, func(refs []ocispec.Descriptor) error {
				for _, d := range refs {
					out = append(out, d.Digest.String())
				}
				return nil
			})
			if err != nil {
				t.Fatalf("repo.Referrers(%q): %v", artifactType, err)
			}
			slices.Sort(out)
			return out
		}
		if got := collect(""); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
			t.Errorf("repo.Referrers: %v, want %v", got, slices.Sorted(maps.Keys(want)))
		}
		if got := collect(signatureType); !slices.Equal(got, []string{sig.Digest.String()}) {
			t.Errorf("repo.Referrers(%s): %v, want [%s]", signatureType, got, sig.Digest)
		}
	})

	t.Run("no referrers", func(t *testing.T) {
		// An existing manifest without referrers, and a digest unknown here.
		for _, dg := range []string{sig.Digest.String(), digest.FromString("kiln e2e: nothing refers to this " + reg.RunID).String()} {
			got, _ := getReferrers(t, reg, repoName, dg, "")
			if len(got.list) != 0 {
				t.Errorf("referrers of %s: %v, want none", dg, got.digests())
			}
		}
		url := reg.URL + "/v2/" + repoName + "/referrers/sha256:not-a-digest"
		if r, _ := doHTTP(t, http.MethodGet, url, nil, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %s, want 400 for an invalid digest", url, r.Status)
		}
	})

	t.Run("missing subject", func(t *testing.T) {
		missing := ocispec.Descriptor{
			MediaType: ocispec.MediaTypeImageManifest,
			Digest:    digest.FromString("kiln e2e: a subject that was never pushed " + reg.RunID),
			Size:      1234,
		}
		body := mustJSON(t, ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			ArtifactType: sbomType, Config: emptyCfg, Layers: []ocispec.Descriptor{}, Subject: &missing,
		})
		r := putManifest(t, reg, repoName, digest.FromBytes(body).String(), ocispec.MediaTypeImageManifest, body)
		if got := r.Header.Get("OCI-Subject"); got != missing.Digest.String() {
			t.Errorf("OCI-Subject %q, want %s", got, missing.Digest)
		}
		got, _ := getReferrers(t, reg, repoName, missing.Digest.String(), "")
		if !slices.Equal(got.digests(), []string{digest.FromBytes(body).String()}) {
			t.Errorf("referrers of a missing subject: %v, want [%s]", got.digests(), digest.FromBytes(body))
		}
	})

	t.Run("extended copy", func(t *testing.T) {
		// oras copies the subject together with everything that refers to it.
		dst := memory.New()
		if _, err := oras.ExtendedCopy(ctx, newRepo(), "v1", dst, "v1", oras.DefaultExtendedCopyOptions); err != nil {
			t.Fatalf("oras.ExtendedCopy: %v", err)
		}
		for _, d := range []ocispec.Descriptor{subject, sbom, sig, index, sbomLayer, sigLayer, layer, config} {
			if ok, err := dst.Exists(ctx, d); err != nil || !ok {
				t.Errorf("after ExtendedCopy, %s (%s) is missing from the copy (%v)", d.Digest, d.MediaType, err)
			}
		}
	})

	t.Run("delete referrer", func(t *testing.T) {
		url := reg.URL + "/v2/" + repoName + "/manifests/" + index.Digest.String()
		if r, b := doHTTP(t, http.MethodDelete, url, nil, nil); r.StatusCode != http.StatusAccepted {
			t.Fatalf("DELETE %s: %s %s, want 202", url, r.Status, b)
		}
		got, _ := getReferrers(t, reg, repoName, subject.Digest.String(), "")
		wantLeft := []string{sbom.Digest.String(), sig.Digest.String()}
		slices.Sort(wantLeft)
		if !slices.Equal(got.digests(), wantLeft) {
			t.Errorf("referrers after deleting %s: %v, want %v", index.Digest, got.digests(), wantLeft)
		}
	})
}
