package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------- HTTP

var httpClient = &http.Client{Timeout: 2 * time.Minute}

// Every manifest media type a registry may hold, for Accept headers.
const acceptManifests = "application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json"

// doHTTP performs a request against the registry under test and returns the
// response (body already read and closed) and the body.
func doHTTP(t *testing.T, method, url string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, b
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// getManifest fetches a manifest by tag or digest; it fails the test unless
// the answer is 200 and the body hashes to the Docker-Content-Digest header.
func getManifest(t *testing.T, reg *registryEnv, repo, ref string) (body []byte, digest, mediaType string) {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/manifests/%s", reg.URL, repo, ref)
	resp, b := doHTTP(t, http.MethodGet, url, http.Header{"Accept": {acceptManifests}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, tail(string(b), 10))
	}
	dcd := resp.Header.Get("Docker-Content-Digest")
	if got := sha256Digest(b); dcd != "" && dcd != got {
		t.Errorf("GET %s: Docker-Content-Digest %s but the body hashes to %s", url, dcd, got)
	}
	if dcd == "" {
		t.Errorf("GET %s: no Docker-Content-Digest header", url)
		dcd = sha256Digest(b)
	}
	if strings.HasPrefix(ref, "sha256:") && sha256Digest(b) != ref {
		t.Errorf("GET %s: body hashes to %s", url, sha256Digest(b))
	}
	return b, dcd, resp.Header.Get("Content-Type")
}

// checkBlob fetches a blob and fails the test unless it is there with the
// expected size and its content hashes to digest.
func checkBlob(t *testing.T, reg *registryEnv, repo, digest string, size int64) {
	t.Helper()
	url := fmt.Sprintf("%s/v2/%s/blobs/%s", reg.URL, repo, digest)
	resp, b := doHTTP(t, http.MethodGet, url, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s", url, resp.Status)
		return
	}
	if got := sha256Digest(b); got != digest {
		t.Errorf("GET %s: content hashes to %s", url, got)
	}
	if size >= 0 && int64(len(b)) != size {
		t.Errorf("GET %s: %d bytes, descriptor says %d", url, len(b), size)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != digest {
		t.Errorf("GET %s: Docker-Content-Digest %s", url, h)
	}
}

// manifestDoc covers the fields of image manifests and indexes (OCI and
// Docker schema 2) that the tests look at.
type manifestDoc struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

// checkManifestTree fetches ref from repo and every manifest and blob it
// references (recursively for indexes), verifying each digest and size.
// It returns the digest of ref's manifest.
func checkManifestTree(t *testing.T, reg *registryEnv, repo, ref string) string {
	t.Helper()
	body, digest, ct := getManifest(t, reg, repo, ref)
	var m manifestDoc
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest %s:%s is not JSON: %v", repo, ref, err)
	}
	if m.SchemaVersion != 2 {
		t.Errorf("manifest %s:%s: schemaVersion %d", repo, ref, m.SchemaVersion)
	}
	if m.MediaType != "" && ct != m.MediaType {
		t.Errorf("manifest %s:%s: Content-Type %q but mediaType %q", repo, ref, ct, m.MediaType)
	}
	for _, d := range m.Manifests {
		if got := checkManifestTree(t, reg, repo, d.Digest); got != d.Digest {
			t.Errorf("child manifest %s: registry says %s", d.Digest, got)
		}
	}
	if m.Config != nil {
		checkBlob(t, reg, repo, m.Config.Digest, m.Config.Size)
	}
	for _, l := range m.Layers {
		checkBlob(t, reg, repo, l.Digest, l.Size)
	}
	if len(m.Manifests) == 0 && m.Config == nil {
		t.Errorf("manifest %s:%s has neither manifests nor a config: %s", repo, ref, body)
	}
	return digest
}
