package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFullDisk runs kiln on a 16 MiB tmpfs and fills it: a blob push, a
// chunk and a manifest PUT that do not fit get 507 with an OCI error saying
// the storage is full, the log says what broke, nothing half-written is
// visible, what was stored before still verifies, kiln keeps serving, and
// once space is freed the same pushes succeed. fsck finds no problem.
func TestFullDisk(t *testing.T) {
	needSetup(t)
	if os.Geteuid() != 0 {
		if isCI() {
			t.Fatal("mounting a small tmpfs needs root, and CI runs as root")
		}
		t.Skip("mounting a small tmpfs needs root")
	}
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "kiln-fulldisk", data).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	// Registered before kiln starts, so it runs after kiln is stopped.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", data, err, out)
		}
	})
	srv, err := launchKiln(bin, "fulldisk", dir, "kiln.log", nil, "", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			srv.kill()
		}
	})
	reg := srv.env
	repo := "fulldisk/app"

	// An image that fits.
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := fullDiskContent(1<<20, 1)
	pushBlobMonolithic(t, reg, repo, cfg)
	pushBlobMonolithic(t, reg, repo, layer)
	manifest := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		sha256Digest(cfg), len(cfg), sha256Digest(layer), len(layer))
	putManifest(t, reg, repo, "v1", ociManifestType, manifest)

	// A blob bigger than the disk.
	big := fullDiskContent(20<<20, 2)
	resp, body := doHTTP(t, "POST", reg.URL+"/v2/"+repo+"/blobs/uploads/?digest="+sha256Digest(big),
		http.Header{"Content-Type": {"application/octet-stream"}}, big)
	expectFull(t, "monolithic push of 20 MiB", resp, body)
	if resp, _ := doHTTP(t, "HEAD", reg.URL+"/v2/"+repo+"/blobs/"+sha256Digest(big), nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("blob that did not fit: HEAD %d, want 404", resp.StatusCode)
	}

	// Chunks: the first fits, the second does not and is not counted.
	resp, body = doHTTP(t, "POST", reg.URL+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %d %s", resp.StatusCode, body)
	}
	loc := absURL(reg, resp.Header.Get("Location"))
	first := big[:8<<20]
	resp, body = doHTTP(t, "PATCH", loc, http.Header{"Content-Type": {"application/octet-stream"},
		"Content-Range": {fmt.Sprintf("0-%d", len(first)-1)}}, first)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("first chunk: %d %s", resp.StatusCode, body)
	}
	loc = absURL(reg, resp.Header.Get("Location"))
	second := big[8<<20:]
	resp, body = doHTTP(t, "PATCH", loc, http.Header{"Content-Type": {"application/octet-stream"},
		"Content-Range": {fmt.Sprintf("%d-%d", len(first), len(big)-1)}}, second)
	expectFull(t, "a 12 MiB chunk on a nearly full disk", resp, body)
	resp, _ = doHTTP(t, "GET", loc, nil, nil)
	if want := fmt.Sprintf("0-%d", len(first)-1); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != want {
		t.Errorf("upload after the failed chunk: %d Range %q, want 204 %q", resp.StatusCode, resp.Header.Get("Range"), want)
	}

	// A manifest PUT on a disk filled to the last byte.
	filler := filepath.Join(data, "filler")
	fillDisk(t, filler)
	resp, body = doHTTP(t, "PUT", reg.URL+"/v2/"+repo+"/manifests/v2",
		http.Header{"Content-Type": {ociManifestType}},
		append(bytes.TrimSpace(manifest), '\n'))
	expectFull(t, "manifest PUT on a full disk", resp, body)
	if resp, _ := doHTTP(t, "GET", reg.URL+"/v2/"+repo+"/manifests/v2", http.Header{"Accept": {acceptManifests}}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("tag whose PUT failed: GET %d, want 404", resp.StatusCode)
	}
	// What was acknowledged before is intact, and reads still work.
	checkManifestTree(t, reg, repo, "v1")

	// Space comes back: the same pushes succeed.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	resp, _ = doHTTP(t, "DELETE", loc, nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("cancel the half-done upload: %d", resp.StatusCode)
	}
	putManifest(t, reg, repo, "v2", ociManifestType, append(bytes.TrimSpace(manifest), '\n'))
	checkManifestTree(t, reg, repo, "v2")
	small := fullDiskContent(4<<20, 3)
	pushBlobMonolithic(t, reg, repo, small)
	checkBlob(t, reg, repo, sha256Digest(small), int64(len(small)))

	log, _ := os.ReadFile(srv.stderr)
	if !bytes.Contains(log, []byte("no space left on device")) {
		t.Errorf("kiln's log never says the disk is full:\n%s", tail(string(log), 30))
	}
	stopped = true
	if err := srv.stop(); err != nil {
		t.Error(err)
	}
	crashFsck(t, bin, dir, data, "after the disk was full")
}

// expectFull checks an answer is 507 with an OCI error saying storage is full.
func expectFull(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	json.Unmarshal(body, &env)
	if resp.StatusCode != http.StatusInsufficientStorage || len(env.Errors) == 0 ||
		env.Errors[0].Code != "UNKNOWN" || !strings.Contains(env.Errors[0].Message, "full") {
		t.Errorf("%s: %d %s, want 507 with an UNKNOWN error saying storage is full", what, resp.StatusCode, body)
	}
}

// fillDisk writes path until the filesystem under it has no space left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := f.Write(buf); err != nil {
			if strings.Contains(err.Error(), "no space left") {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("the disk never filled up")
}

const ociManifestType = "application/vnd.oci.image.manifest.v1+json"

// fullDiskContent is n pseudo-random bytes (incompressible, distinct per seed).
func fullDiskContent(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}
