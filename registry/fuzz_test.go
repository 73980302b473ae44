package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/distspec"
	"kiln/storage"
)

// FuzzReference checks the reference parser: never a panic, and nothing
// accepted that could escape a path or break the spec grammar's limits
// (distspec.FuzzNameAndTag checks names and tags themselves).
func FuzzReference(f *testing.F) {
	for _, seed := range []string{
		"library/busybox", "a", "a/b/c", "a-b__c.d", "a--b", "x" + strings.Repeat("a", 254), strings.Repeat("a", 256),
		"../etc/passwd", "a/../b", "a//b", "/a", "a/", "A", "a\x00b", "a.", ".a", "a..b", "a/.b", "%2e%2e",
		"a___b", "a_.b", "a__b", "a-_b", "a_-b", "a.-b", "a/b-", "a/-b", "a----b/c.d_e__f", "latest", "v1.0.0", "_tag", ".tag", "-tag", strings.Repeat("t", 128), strings.Repeat("t", 129),
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"sha512:" + strings.Repeat("ab", 64), "sha256:../../../etc/passwd", "sha256:", ":", "md5:abc",
		"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "\xff\xfe", "a\nb", "tag\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := parseReference(s)
		if err != nil {
			var e *distspec.Error
			if !errors.As(err, &e) || (e.Code != "MANIFEST_INVALID" && e.Code != "DIGEST_INVALID") {
				t.Fatalf("reference %q refused with %v, want MANIFEST_INVALID or DIGEST_INVALID", s, err)
			}
			return
		}
		switch {
		case ref.digest != "" && ref.tag != "":
			t.Fatalf("reference %q is both tag and digest", s)
		case ref.digest != "":
			if err := ref.digest.Validate(); err != nil {
				t.Fatalf("reference %q accepted with invalid digest: %v", s, err)
			}
			if strings.ContainsAny(ref.digest.Encoded(), "/.\\\x00") {
				t.Fatalf("digest %q has path characters", ref.digest)
			}
		case ref.tag != "":
			if !distspec.ValidTag(ref.tag) || ref.tag != s {
				t.Fatalf("reference %q accepted as tag %q", s, ref.tag)
			}
		default:
			t.Fatalf("reference %q accepted as nothing", s)
		}
	})
}

// FuzzManifestPut PUTs arbitrary bytes with an arbitrary Content-Type: the
// answer is 201 or a 4xx in the spec's error form, never a 5xx.
func FuzzManifestPut(f *testing.F) {
	store := storage.NewInMemory(storage.Options{})
	srv := httptest.NewServer(New(store, Options{DeleteEnabled: true}))
	f.Cleanup(srv.Close)

	// A config blob the seeds can reference, so that some PUTs succeed.
	cfg := []byte(`{}`)
	cfgDigest := string(digest.FromBytes(cfg))
	resp, err := http.Post(srv.URL+"/v2/fuzz/repo/blobs/uploads/?digest="+cfgDigest, "application/octet-stream", bytes.NewReader(cfg))
	if err != nil {
		f.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		f.Fatalf("push config: %d", resp.StatusCode)
	}
	image := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfgDigest + `","size":2},"layers":[]}`
	unknown := "sha256:" + strings.Repeat("0", 64)
	for _, seed := range []struct{ ct, ref, body string }{
		{storage.MediaTypeOCIManifest, "v1", image},
		{"", "latest", image},
		{storage.MediaTypeOCIManifest + "; charset=utf-8", "v1", image},
		{storage.MediaTypeOCIIndex, "v1", image},
		{storage.MediaTypeOCIIndex, "idx", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + unknown + `","size":1}]}`},
		{storage.MediaTypeOCIIndex, "empty", `{"schemaVersion":2,"manifests":[]}`},
		{storage.MediaTypeDockerManifest, "v2", `{"schemaVersion":2,"config":{"mediaType":"x","digest":"` + unknown + `","size":1}}`},
		{"", "sha256:" + strings.Repeat("1", 64), image},
		{"", "sha256:../../etc", image},
		{"", "..", image},
		{"", "v1", `{"schemaVersion":2,"subject":{"mediaType":"x","digest":"` + cfgDigest + `","size":2},"config":{"mediaType":"x","digest":"` + cfgDigest + `","size":2}}`},
		{"text/plain", "v1", "hello"},
		{";;;", "v1", image},
		{"application/json", "v1", `{"schemaVersion":2,"manifests":null}`},
		{"", "v1", ""},
		{"", "v1", "\x00"},
		{"", "v1", strings.Repeat("{", 5000)},
	} {
		f.Add(seed.ct, seed.ref, []byte(seed.body))
	}
	client := srv.Client()
	f.Fuzz(func(t *testing.T, contentType, ref string, body []byte) {
		if ref == "" || strings.ContainsAny(ref, "/?#%") || !isPrintableASCII(ref) {
			ref = "fuzz"
		}
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/v2/fuzz/repo/manifests/"+ref, bytes.NewReader(body))
		if err != nil {
			t.Skip(err)
		}
		if contentType != "" {
			req.Header["Content-Type"] = []string{contentType}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Skip(err) // a header net/http refuses to send
		}
		defer resp.Body.Close()
		var env struct {
			Errors []struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		switch {
		case resp.StatusCode == http.StatusCreated:
			if resp.Header.Get("Docker-Content-Digest") == "" {
				t.Fatal("201 without Docker-Content-Digest")
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || len(env.Errors) == 0 {
				t.Fatalf("%d without an errors body: %v", resp.StatusCode, err)
			}
			for _, e := range env.Errors {
				if !specCodes[e.Code] {
					t.Fatalf("%d with code %q", resp.StatusCode, e.Code)
				}
			}
		default:
			t.Fatalf("PUT %q (Content-Type %q, %d bytes): status %d", ref, contentType, len(body), resp.StatusCode)
		}
	})
}

var specCodes = map[string]bool{
	"BLOB_UNKNOWN": true, "BLOB_UPLOAD_INVALID": true, "BLOB_UPLOAD_UNKNOWN": true, "DIGEST_INVALID": true,
	"MANIFEST_BLOB_UNKNOWN": true, "MANIFEST_INVALID": true, "MANIFEST_UNKNOWN": true, "NAME_INVALID": true,
	"NAME_UNKNOWN": true, "SIZE_INVALID": true, "UNAUTHORIZED": true, "DENIED": true, "UNSUPPORTED": true,
	"TOOMANYREQUESTS": true,
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
