package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"kiln/config"
	"kiln/storage"
)

// seedStore stores a tagged image (config and one layer) and one orphan
// blob in repo "app" of the filesystem store at dir.
func seedStore(t *testing.T, dir string) (orphan digest.Digest) {
	t.Helper()
	ctx := t.Context()
	s, err := storage.NewFilesystem(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(content string) v1.Descriptor {
		d := digest.FromString(content)
		if _, err := s.PutBlob(ctx, "app", d, strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: d, Size: int64(len(content))}
	}
	cfg, layer := put(`{"architecture":"amd64"}`), put("layer bytes")
	cfg.MediaType, layer.MediaType = v1.MediaTypeImageConfig, v1.MediaTypeImageLayerGzip
	body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest, "config": cfg, "layers": []v1.Descriptor{layer}})
	p, err := storage.ParseManifest(v1.MediaTypeImageManifest, body)
	if err != nil {
		t.Fatal(err)
	}
	m := storage.Manifest{Digest: digest.FromBytes(body), MediaType: v1.MediaTypeImageManifest, Content: body}
	if err := s.PutManifest(ctx, "app", m, p, "v1"); err != nil {
		t.Fatal(err)
	}
	return put("an orphan, 1 KiB" + strings.Repeat(".", 1024-16)).Digest
}

func TestGCCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	orphan := seedStore(t, dir)
	blob := filepath.Join(dir, "blobs", "sha256", orphan.Encoded()[:2], orphan.Encoded())
	run := func(args ...string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := newRootCmd()
		cmd.SetOut(&stdout)
		cmd.SetErr(&stderr)
		cmd.SetArgs(append([]string{"gc", "--data", dir}, args...))
		if err := cmd.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("kiln gc %v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	// The default grace (1h) keeps everything.
	out, _ := run()
	if !strings.Contains(out, "gc: marked 1 manifests, 3 blobs; swept 0 manifests, 0 blobs, 0 B in ") {
		t.Errorf("stdout %q", out)
	}

	out, errOut := run("--dry-run", "--grace", "0s")
	t.Logf("stderr:\n%s", errOut)
	if !strings.Contains(out, "gc (dry run): marked 1 manifests, 3 blobs; would sweep 0 manifests, 1 blobs, 1.0 KiB in ") {
		t.Errorf("stdout %q", out)
	}
	for _, want := range []string{"(grace 0s, delete untagged false, dry run)", "gc: mark: 1 repositories, 1 manifests, 3 blobs", "gc: sweep: 4 blobs scanned; 0 manifests, 1 blobs (1.0 KiB) to sweep"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if !fileExists(blob) {
		t.Fatal("dry run deleted the orphan")
	}

	out, _ = run("--grace", "0s", "--json")
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if r["blobsSwept"] != 1.0 || r["bytesFreed"] != 1024.0 || r["dryRun"] != false {
		t.Errorf("report %s", out)
	}
	if fileExists(blob) {
		t.Error("orphan not deleted")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestAdminGCEndpointAndLoop(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Storage.GC.Grace = 0
	orphan := seedStore(t, cfg.Storage.Filesystem.Root)
	var logs syncBuffer
	addr, stop := startServe(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	gc := "http://" + addr + "/kiln/v1/gc"
	post := func(url string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
		return resp.StatusCode, m
	}

	if resp, err := http.Get(gc); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %v %v", resp.Status, err)
	}
	if code, _ := post(gc + "?dry_run=maybe"); code != http.StatusBadRequest {
		t.Errorf("bad dry_run: %d", code)
	}
	code, r := post(gc + "?dry_run=1")
	if code != http.StatusOK || r["dryRun"] != true || r["blobsSwept"] != 1.0 || r["manifestsMarked"] != 1.0 {
		t.Errorf("dry run: %d %v", code, r)
	}
	code, r = post(gc)
	if code != http.StatusOK || r["dryRun"] != false || r["blobsSwept"] != 1.0 || r["bytesFreed"] != 1024.0 {
		t.Errorf("gc: %d %v", code, r)
	}
	if resp, err := http.Head("http://" + addr + "/v2/app/blobs/" + string(orphan)); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("HEAD of the swept orphan: %v %v", resp.Status, err)
	}
	// The build API still answers under /kiln/.
	if resp, err := http.Get("http://" + addr + "/kiln/v1/builds"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("build API: %v %v", resp.Status, err)
	}
	stop() // the log is complete once kiln has stopped
	if out := logs.String(); !strings.Contains(out, "gc: marked 1 manifests, 3 blobs; swept 0 manifests, 1 blobs, 1.0 KiB") || !strings.Contains(out, "trigger=api") {
		t.Errorf("logs lack the collection:\n%s", out)
	}
}

func TestGCLoop(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Storage.GC = config.GC{Interval: 50 * time.Millisecond, Grace: 0, DeleteUntagged: true}
	orphan := seedStore(t, cfg.Storage.Filesystem.Root)
	blob := filepath.Join(cfg.Storage.Filesystem.Root, "blobs", "sha256", orphan.Encoded()[:2], orphan.Encoded())
	var logs syncBuffer
	_, stop := startServe(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	// The blob leaves its place (for the trash) before the collection
	// ends: wait for the collection's last line, then look.
	wait, cancelWait := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelWait()
	if !logs.waitFor(wait, "swept 0 manifests, 1 blobs") {
		t.Errorf("no scheduled collection swept the orphan:\n%s", logs.String())
	}
	if fileExists(blob) {
		t.Error("the scheduled collection did not sweep the orphan")
	}
	stop() // the log is complete once kiln has stopped
	out := logs.String()
	for _, want := range []string{"garbage collection scheduled", "trigger=schedule", "gc: mark: ", "swept 0 manifests, 1 blobs"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}
