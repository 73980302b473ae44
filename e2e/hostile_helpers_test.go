package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	ctOCI   = map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
	ctIndex = map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}
)

// outsideEntries lists what lies beside the data directory (the harness's
// temp dir, and the system temp dir holding it), recursively but outside
// the data directory itself. Without a kiln of our own (KILN_E2E_REGISTRY)
// it lists nothing.
func outsideEntries(t *testing.T, reg *registryEnv) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	if !reg.Kiln {
		return seen
	}
	data := filepath.Join(suiteTmp, "data")
	filepath.WalkDir(suiteTmp, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if p == data {
			return filepath.SkipDir
		}
		seen[p] = true
		return nil
	})
	parent := filepath.Dir(suiteTmp)
	if entries, err := os.ReadDir(parent); err == nil {
		for _, e := range entries {
			seen[filepath.Join(parent, e.Name())] = true
		}
	}
	// What a traversal out of the root filesystem would produce.
	for _, p := range []string{"/" + escapeMarker, "/etc/" + escapeMarker, "/tmp/" + escapeMarker} {
		if _, err := os.Lstat(p); err == nil {
			seen[p] = true
		}
	}
	return seen
}

// rawRequest sends one request with target written as is on the request
// line (no client-side cleaning or escaping) and returns the response,
// body read.
func rawRequest(t *testing.T, reg *registryEnv, method, target string, header map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, reg.Addr)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if body != nil || method == "PUT" || method == "POST" || method == "PATCH" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return roundTrip(t, reg, method, b.Bytes())
}

// rawChunked sends body with Transfer-Encoding: chunked, so the server
// knows no Content-Length.
func rawChunked(t *testing.T, reg *registryEnv, method, target string, header map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n", method, target, reg.Addr)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if len(body) > 0 {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(body), body)
	}
	b.WriteString("0\r\n\r\n")
	return roundTrip(t, reg, method, b.Bytes())
}

func roundTrip(t *testing.T, reg *registryEnv, method string, req []byte) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", reg.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	go c.Write(req) // the server may answer before reading everything
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s: reading the response: %v", method, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// rawFlood writes req (which may be refused before it is all sent) and
// returns the status answered, or 0 when the connection closed unanswered.
func rawFlood(t *testing.T, reg *registryEnv, req string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", reg.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.WriteString(c, req)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	status := 0
	if err != nil {
		t.Logf("no response: %v", err)
	} else {
		status = resp.StatusCode
		resp.Body.Close()
	}
	c.Close()
	wg.Wait()
	return status
}

func checkAlive(t *testing.T, reg *registryEnv) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(reg.URL + "/v2/")
	if err != nil {
		t.Fatalf("server stopped answering GET /v2/: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /v2/: %d", resp.StatusCode)
	}
}

func pushBlobMonolithic(t *testing.T, reg *registryEnv, repo string, b []byte) {
	t.Helper()
	resp, body := rawRequest(t, reg, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+sha256Digest(b), nil, b)
	if resp.StatusCode != 201 {
		t.Fatalf("push blob: %d %s", resp.StatusCode, short(string(body)))
	}
}

func startUpload(t *testing.T, reg *registryEnv, repo string) string {
	t.Helper()
	resp, body := rawRequest(t, reg, "POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if resp.StatusCode != 202 {
		t.Fatalf("start upload: %d %s", resp.StatusCode, short(string(body)))
	}
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "http") {
		loc = loc[strings.Index(loc[len("http://"):], "/")+len("http://"):]
	}
	return loc
}

func expectNoBlob(t *testing.T, reg *registryEnv, repo, d string) {
	t.Helper()
	resp, _ := rawRequest(t, reg, "HEAD", "/v2/"+repo+"/blobs/"+d, nil, nil)
	if resp.StatusCode != 404 {
		t.Errorf("HEAD blob %s: %d, want 404 (it was never validly pushed)", d, resp.StatusCode)
	}
}

func listTags(t *testing.T, reg *registryEnv, repo string) []string {
	t.Helper()
	resp, body := rawRequest(t, reg, "GET", "/v2/"+repo+"/tags/list", nil, nil)
	if resp.StatusCode == 404 {
		return nil
	}
	var l struct {
		Tags []string `json:"tags"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &l) != nil {
		t.Fatalf("tags/list: %d %s", resp.StatusCode, short(string(body)))
	}
	return l.Tags
}

func firstErrorCode(body []byte) string {
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

// nameOfLength returns a valid repository name of exactly n characters
// under prefix.
func nameOfLength(prefix string, n int) string {
	name := prefix + "/"
	return name + strings.Repeat("n", n-len(name))
}

func imageManifest(cfgDigest string, cfgSize int, layers []string) []byte {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": cfgSize},
		"layers":        []any{},
	}
	var ls []any
	for _, l := range layers {
		ls = append(ls, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": 13})
	}
	if ls != nil {
		m["layers"] = ls
	}
	b, _ := json.Marshal(m)
	return b
}

func bigImage(cfgDigest string, cfgSize, n int, layer func(int) string) []byte {
	layers := make([]string, n)
	for i := range layers {
		layers[i] = layer(i)
	}
	return imageManifest(cfgDigest, cfgSize, layers)
}

func bigIndex(n int, salt string) []byte {
	ms := make([]any, n)
	for i := range ms {
		ms[i] = map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json",
			"digest":    sha256Digest([]byte(fmt.Sprintf("unknown child %d %s", i, salt))),
			"size":      100,
		}
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ms})
	return b
}

func manyHeaders(n, size int) map[string]string {
	h := map[string]string{}
	for i := 0; i < n; i++ {
		h["X-Many-"+strconv.Itoa(i)] = strings.Repeat("h", size)
	}
	return h
}

func absURL(reg *registryEnv, loc string) string {
	if strings.HasPrefix(loc, "http") {
		return loc
	}
	return reg.URL + loc
}

func sep(loc string) string {
	if strings.Contains(loc, "?") {
		return "&"
	}
	return "?"
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// finishedUploads is how many manifest PUTs and upload POSTs kiln has
// finished, whatever their status, from its /metrics; 0 for another
// registry.
func finishedUploads(t *testing.T, reg *registryEnv) int {
	t.Helper()
	if !reg.Kiln {
		return 0
	}
	resp, body := doHTTP(t, http.MethodGet, reg.URL+"/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, `kiln_http_requests_total{method="PUT",route="manifest",`) &&
			!strings.HasPrefix(line, `kiln_http_requests_total{method="POST",route="blob_upload",`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}
