package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// stores runs f against every store kind tests cover.
func stores(t *testing.T, f func(t *testing.T, srv *httptest.Server, store *storage.Store)) {
	t.Helper()
	fs, err := storage.NewFilesystem(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*storage.Store{"filesystem": fs, "inmemory": storage.NewInMemory(storage.Options{})} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(New(s, Options{DeleteEnabled: true}))
			defer srv.Close()
			f(t, srv, s)
		})
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode returns the first error code of an error body.
func (r response) errorCode() string { code, _ := r.firstError(); return code }

// errorMessage returns the first error message of an error body.
func (r response) errorMessage() string { _, msg := r.firstError(); return msg }

func (r response) firstError() (code, message string) {
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(r.body, &env) != nil || len(env.Errors) == 0 {
		return "", ""
	}
	return env.Errors[0].Code, env.Errors[0].Message
}

func do(t *testing.T, srv *httptest.Server, method, path string, body []byte, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// pushBlob uploads content monolithically to repo and returns its digest.
func pushBlob(t *testing.T, srv *httptest.Server, repo string, content []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(content)
	r := do(t, srv, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+string(d), content)
	if r.status != http.StatusCreated {
		t.Fatalf("push blob: %d %s", r.status, r.body)
	}
	return d
}

// imageManifest builds an OCI image manifest over a config and layers.
func imageManifest(config digest.Digest, configSize int, layers ...digest.Digest) []byte {
	var ls []string
	for _, l := range layers {
		ls = append(ls, `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"`+string(l)+`","size":1}`)
	}
	return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + string(config) + `","size":` + itoa(configSize) + `},` +
		`"layers":[` + strings.Join(ls, ",") + `]}`)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

// pushImage pushes a one-layer image to repo:tag and returns the manifest.
func pushImage(t *testing.T, srv *httptest.Server, repo, tag string) ([]byte, digest.Digest) {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	c := pushBlob(t, srv, repo, cfg)
	l := pushBlob(t, srv, repo, []byte("layer of "+repo+":"+tag))
	m := imageManifest(c, len(cfg), l)
	r := do(t, srv, "PUT", "/v2/"+repo+"/manifests/"+tag, m, "Content-Type", ociManifest)
	if r.status != http.StatusCreated {
		t.Fatalf("push manifest: %d %s", r.status, r.body)
	}
	return m, digest.FromBytes(m)
}
