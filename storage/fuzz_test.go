package storage

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const fuzzDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// FuzzParseManifest feeds arbitrary Content-Types and bodies to
// ParseManifest: it must never panic, every refusal wraps
// ErrManifestInvalid, and what it accepts has valid descriptors and parses
// again to the same result.
func FuzzParseManifest(f *testing.F) {
	image := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + fuzzDigest + `","size":2},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + fuzzDigest + `","size":0}]}`
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",` +
		`"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + fuzzDigest + `","size":10,` +
		`"platform":{"architecture":"amd64","os":"linux"}}]}`
	docker := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + fuzzDigest + `","size":1},` +
		`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:zz","size":-1}]}`
	subject := `{"schemaVersion":2,"artifactType":"application/x.sig","config":{"mediaType":"application/vnd.oci.empty.v1+json",` +
		`"digest":"` + fuzzDigest + `","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + fuzzDigest + `","size":3}}`
	for _, seed := range []struct{ ct, body string }{
		{MediaTypeOCIManifest, image},
		{"", image},
		{MediaTypeOCIIndex, index},
		{"", index},
		{MediaTypeDockerManifest, docker},
		{"", subject},
		{MediaTypeDockerManifestList, `{"schemaVersion":2,"manifests":[]}`},
		{MediaTypeOCIIndex, image},
		{MediaTypeOCIManifest, index},
		{"text/plain", image},
		{"", `{"schemaVersion":2}`},
		{"", `{"schemaVersion":1,"fsLayers":[]}`},
		{"", `{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:../../etc/passwd","size":1}}`},
		{"", `{"schemaVersion":2,"config":{"mediaType":"a","digest":"` + fuzzDigest + `","size":-5}}`},
		{"", `{"schemaVersion":2,"config":{"digest":"` + fuzzDigest + `","size":1}}`},
		{"", `{"schemaVersion":2,"config":null,"manifests":null}`},
		{"", `{"schemaVersion":2,"manifests":[{}]}`},
		{"", `{"schemaVersion":2,"subject":{"digest":"md5:abc"},"manifests":[]}`},
		{"", `{"schemaVersion":2.5}`},
		{"", `{"schemaVersion":"2"}`},
		{"", `[]`},
		{"", `null`},
		{"", ``},
		{"", "\x00\xff"},
		{"", `{"schemaVersion":2,"schemaVersion":2,"manifests":[],"manifests":null}`},
		{"", strings.Repeat("[", 10000)},
		{"", `{"schemaVersion":2,"annotations":{"a":1}}`},
		{"application/vnd.oci.image.manifest.v1+json; charset=utf-8", image},
	} {
		f.Add(seed.ct, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		p, err := ParseManifest(contentType, body)
		if err != nil {
			if !errors.Is(err, ErrManifestInvalid) {
				t.Fatalf("refusal does not wrap ErrManifestInvalid: %v", err)
			}
			if p != nil {
				t.Fatalf("refusal returned a manifest: %+v", p)
			}
			return
		}
		switch p.MediaType {
		case MediaTypeOCIManifest, MediaTypeDockerManifest:
			if len(p.Blobs) == 0 {
				t.Fatalf("image manifest accepted without a config")
			}
			if p.Manifests != nil {
				t.Fatalf("image manifest accepted with manifests")
			}
		case MediaTypeOCIIndex, MediaTypeDockerManifestList:
			if len(p.Blobs) != 0 {
				t.Fatalf("index accepted with blobs")
			}
		default:
			t.Fatalf("accepted unsupported media type %q", p.MediaType)
		}
		if contentType != "" && p.MediaType != contentType {
			t.Fatalf("Content-Type %q accepted as %q", contentType, p.MediaType)
		}
		descs := append(append([]v1.Descriptor{}, p.Blobs...), p.Manifests...)
		if p.Subject != nil {
			descs = append(descs, *p.Subject)
		}
		for _, d := range descs {
			if err := d.Digest.Validate(); err != nil {
				t.Fatalf("accepted descriptor with invalid digest %q: %v", d.Digest, err)
			}
			if strings.ContainsAny(d.Digest.Encoded(), "/.\\\x00") {
				t.Fatalf("accepted digest with path characters: %q", d.Digest)
			}
			if d.Size < 0 || d.MediaType == "" {
				t.Fatalf("accepted bad descriptor %+v", d)
			}
		}
		// Stable: parsing the same bytes again, with the media type just
		// decided, gives the same answer.
		again, err := ParseManifest(p.MediaType, body)
		if err != nil {
			t.Fatalf("re-parse as %q failed: %v", p.MediaType, err)
		}
		a, _ := json.Marshal(p)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("re-parse differs:\n%s\n%s", a, b)
		}
	})
}
