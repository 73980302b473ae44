package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"kiln/internal/testbed"
)

// startS3Server starts versitygw on a free loopback port with a bucket for
// this test and stops it when the test ends. The first run on a machine
// builds it from the Go module proxy (a few minutes).
func startS3Server(t *testing.T) *testbed.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	state, err := os.MkdirTemp(suiteTmp, "s3-")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	s3, err := testbed.StartS3(ctx, state, "kiln-e2e")
	if err != nil {
		t.Fatalf("S3 server: %v", err)
	}
	t.Cleanup(func() {
		if err := s3.Stop(); err != nil {
			t.Log(err) // stopped all the same
		}
	})
	t.Logf("S3 server %s (bucket %s) up in %s", s3.Endpoint, s3.Bucket, time.Since(t0).Round(time.Millisecond))
	return s3
}

// launchS3Kiln starts `kiln serve --config FILE` on the S3 server under key
// prefix root (instances given the same root share one registry), with
// storageExtra (YAML lines indented under storage:) added to the config.
// The credentials come from the environment, as in production.
// s3Config is the start of a kiln config on s3's bucket under root; keys
// of storage.s3 may follow (indented four spaces), then other sections.
func s3Config(s3 *testbed.S3, root string) string {
	return fmt.Sprintf(`version: 1
http:
  shutdown_timeout: 10s
storage:
  driver: s3
  s3:
    endpoint: %s
    region: %s
    bucket: %s
    path_style: true
    insecure: true
    root: %s
    chunksize: 5242880
`, s3.Endpoint, s3.Region, s3.Bucket, root)
}

// s3Env is the environment that gives kiln s3's keys.
func s3Env(s3 *testbed.S3) []string {
	return []string{"KILN_S3_ACCESS_KEY=" + s3.AccessKey, "KILN_S3_SECRET_KEY=" + s3.SecretKey}
}

func launchS3Kiln(t *testing.T, s3 *testbed.S3, runID, root, name, storageExtra string) *kilnServer {
	t.Helper()
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(suiteTmp, "s3-kiln-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := s3Config(s3, root) + storageExtra
	cfgPath := filepath.Join(dir, "kiln.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := launchKiln(bin, runID, dir, "kiln.stderr", s3Env(s3), "", "--config", cfgPath)
	if err != nil {
		if srv != nil {
			t.Log(kilnTail(srv, 40))
		}
		t.Fatalf("kiln %s on S3: %v", name, err)
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Errorf("kiln %s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("kiln %s:\n%s", name, kilnTail(srv, 60))
		}
	})
	return srv
}

func kilnTail(s *kilnServer, n int) string {
	var b strings.Builder
	s.printTail(&b, n)
	return b.String()
}

// TestS3 runs kiln on S3 (storage.driver: s3): two instances A and B on
// the same bucket and root, B with storage.redirect on.
func TestS3(t *testing.T) {
	needSetup(t)
	s3 := startS3Server(t)
	runID := fmt.Sprintf("s3r%s-%d", time.Now().UTC().Format("150405"), os.Getpid())
	root := "/kiln-" + runID
	a := launchS3Kiln(t, s3, runID, root, "a", "  redirect: false\n")
	b := launchS3Kiln(t, s3, runID, root, "b", "  redirect: true\n")

	t.Run("TwoInstances", func(t *testing.T) { testS3TwoInstances(t, a.env, b.env) })
	t.Run("Redirect", func(t *testing.T) { testS3Redirect(t, s3, a.env, b.env) })
	t.Run("Conformance", func(t *testing.T) { runConformance(t, a.env, "conformance-a", nil) })
	// Through redirects the blob GET's last answer comes from S3, which
	// cannot send Docker-Content-Digest: only that optional check is off.
	t.Run("ConformanceRedirect", func(t *testing.T) {
		runConformance(t, b.env, "conformance-b", []string{"OCI_API_BLOBS_DIGEST_HEADER=false"})
	})
}

// testS3TwoInstances: what one instance stores, the other serves, upload
// sessions included.
func testS3TwoInstances(t *testing.T, a, b *registryEnv) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	repo := a.Repo("s3", "two")

	// An image pushed through A pulls through B.
	img, err := random.Image(3<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	refA, _ := name.ParseReference(a.Addr+"/"+repo+":v1", name.Insecure)
	refB, _ := name.ParseReference(b.Addr+"/"+repo+":v1", name.Insecure)
	if err := remote.Write(refA, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push to A: %v", err)
	}
	pulled, err := remote.Image(refB, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull from B: %v", err)
	}
	want, _ := img.Digest()
	if got, _ := pulled.Digest(); got != want {
		t.Errorf("B serves %s, A was pushed %s", got, want)
	}
	if err := validate.Image(pulled); err != nil {
		t.Errorf("image pulled from B: %v", err)
	}
	checkManifestTree(t, b, repo, "v1")

	// A chunked upload begun on A, continued on B and finished on A.
	rnd := rand.New(rand.NewPCG(1, 2))
	chunk := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rnd.Uint32())
		}
		return p
	}
	c1, c2, c3 := chunk(6<<20), chunk(5<<20+17), chunk(1<<20)
	all := bytes.Join([][]byte{c1, c2, c3}, nil)
	dgst := sha256Digest(all)

	resp, body := doHTTP(t, http.MethodPost, a.URL+"/v2/"+repo+"/blobs/uploads/", http.Header{"Content-Length": {"0"}}, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST on A: %s: %s", resp.Status, body)
	}
	loc := uploadPath(t, resp)
	patch := func(reg *registryEnv, loc string, off int, p []byte) string {
		t.Helper()
		h := http.Header{"Content-Type": {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", off, off+len(p)-1)}}
		resp, body := doHTTP(t, http.MethodPatch, reg.URL+loc, h, p)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH %d bytes at %d on %s: %s: %s", len(p), off, reg.Addr, resp.Status, body)
		}
		if r, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", off+len(p)-1); r != want {
			t.Errorf("PATCH on %s: Range %q, want %q", reg.Addr, r, want)
		}
		return uploadPath(t, resp)
	}
	loc = patch(a, loc, 0, c1)
	// B knows the session A started.
	resp, _ = doHTTP(t, http.MethodGet, b.URL+loc, nil, nil)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != fmt.Sprintf("0-%d", len(c1)-1) {
		t.Errorf("GET upload status on B: %s, Range %q", resp.Status, resp.Header.Get("Range"))
	}
	loc = patch(b, loc, len(c1), c2)
	u, err := url.Parse(a.URL + loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("digest", dgst)
	u.RawQuery = q.Encode()
	resp, body = doHTTP(t, http.MethodPut, u.String(), http.Header{"Content-Type": {"application/octet-stream"}}, c3)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT on A: %s: %s", resp.Status, body)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst {
		t.Errorf("PUT on A: Docker-Content-Digest %q, want %s", got, dgst)
	}
	checkBlob(t, a, repo, dgst, int64(len(all)))
	checkBlob(t, b, repo, dgst, int64(len(all)))
}

// uploadPath returns the path and query of an upload's Location.
func uploadPath(t *testing.T, resp *http.Response) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		t.Fatalf("bad upload Location %q: %v", loc, err)
	}
	if u.RawQuery != "" {
		return u.Path + "?" + u.RawQuery
	}
	return u.Path
}

// testS3Redirect: with storage.redirect on, a blob GET answers 307 to a
// presigned URL on the S3 endpoint; HEAD and the instance without
// redirects answer themselves.
func testS3Redirect(t *testing.T, s3 *testbed.S3, a, b *registryEnv) {
	repo := b.Repo("s3", "redirect")
	content := bytes.Repeat([]byte("kiln on s3 "), 100_000)
	dgst := sha256Digest(content)
	resp, body := doHTTP(t, http.MethodPost, b.URL+"/v2/"+repo+"/blobs/uploads/?digest="+dgst,
		http.Header{"Content-Type": {"application/octet-stream"}}, content)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("monolithic upload: %s: %s", resp.Status, body)
	}
	noFollow := &http.Client{Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	blobURL := b.URL + "/v2/" + repo + "/blobs/" + dgst

	resp, err := noFollow.Get(blobURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("GET %s: %s, want 307", blobURL, resp.Status)
	}
	if !strings.HasPrefix(loc, s3.Endpoint+"/") {
		t.Errorf("Location %q is not on the S3 endpoint %s", loc, s3.Endpoint)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != dgst {
		t.Errorf("redirect: Docker-Content-Digest %q", got)
	}
	resp, err = noFollow.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sha256Digest(got) != dgst {
		t.Errorf("GET Location: %s, %d bytes hashing to %s", resp.Status, len(got), sha256Digest(got))
	}
	// A ranged GET follows the redirect with its Range.
	resp, got = doHTTP(t, http.MethodGet, blobURL, http.Header{"Range": {"bytes=11-21"}}, nil)
	if resp.StatusCode != http.StatusPartialContent || string(got) != "kiln on s3 " {
		t.Errorf("ranged GET through the redirect: %s %q", resp.Status, got)
	}

	// HEAD stays on kiln.
	req, _ := http.NewRequest(http.MethodHead, blobURL, nil)
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(content)) || resp.Header.Get("Location") != "" {
		t.Errorf("HEAD: %s, length %d, Location %q", resp.Status, resp.ContentLength, resp.Header.Get("Location"))
	}
	// An unknown blob is still 404 from kiln, not a redirect.
	resp, err = noFollow.Get(b.URL + "/v2/" + repo + "/blobs/" + sha256Digest([]byte("absent")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown blob: %s", resp.Status)
	}
	// A, without redirects, serves the bytes itself.
	resp, err = noFollow.Get(a.URL + "/v2/" + repo + "/blobs/" + dgst)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
		t.Errorf("GET on A: %s, %d bytes", resp.Status, len(got))
	}
}
