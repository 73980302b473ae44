package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// TestServeObservability runs kiln with two build rules (one that builds,
// one that fails) and an upstream, and checks /metrics after builds,
// cache misses and hits, pushes and a garbage collection, and that lines
// logged inside a request carry its access line's request_id.
func TestServeObservability(t *testing.T) {
	// Not parallel: it changes the store-scan interval every serve reads.
	defer func(i, a time.Duration) { storeScanInterval, storeScanMaxAge = i, a }(storeScanInterval, storeScanMaxAge)
	storeScanInterval = 0 // every scrape after a change rescans

	upStore := storage.NewInMemory(storage.Options{})
	up := httptest.NewServer(registry.New(upStore, registry.Options{}))
	defer up.Close()
	upHost := strings.TrimPrefix(up.URL, "http://")

	dir := t.TempDir()
	for rel, content := range map[string]string{
		"ok/Dockerfile":  "FROM kiln.test/base:1\nCOPY a.txt /a.txt\n",
		"ok/a.txt":       "a",
		"bad/Dockerfile": "FROM kiln.test/base:1\nCOPY missing.txt /m.txt\n",
	} {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t)
	cfg.Storage.GC.Grace = 0
	cfg.Registry.Hostnames = []string{"kiln.test"}
	cfg.Builds = []config.Build{
		{Name: "ok", Context: filepath.Join(dir, "ok"), Dockerfile: "Dockerfile", Tags: []string{"ok:v1"}, Builder: "native", Strategy: "build"},
		{Name: "bad", Context: filepath.Join(dir, "bad"), Dockerfile: "Dockerfile", Tags: []string{"bad:v1"}, Builder: "native", Strategy: "build"},
	}
	cfg.Proxy = []config.Upstream{{Name: "up.example", URL: up.URL, TTL: time.Hour, Timeout: 10 * time.Second, WatchInterval: time.Hour}}

	var logs syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, cfg, newLogger(&logs, config.Log{Level: "info", Format: "json"}), ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("runServe: %v", err)
	}
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	scrape := func() string {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	want := func(body string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(body, l+"\n") {
				t.Errorf("/metrics lacks %q", l)
			}
		}
	}

	// Builds: a base push builds ok and fails bad.
	base, _ := random.Image(512, 1)
	ref, _ := name.ParseReference(addr+"/base:1", name.Insecure)
	if err := remote.Write(ref, base); err != nil {
		t.Fatal(err)
	}
	body := waitForMetric(t, scrape, `kiln_builds_total{result="succeeded",rule="ok"} 1`, `kiln_builds_total{result="failed",rule="bad"} 1`)
	want(body,
		`kiln_build_duration_seconds_count{result="succeeded",rule="ok"} 1`,
		`kiln_build_duration_seconds_count{result="failed",rule="bad"} 1`,
		`kiln_builds_running 0`,
		`kiln_builds_queued 0`,
	)
	if strings.Contains(body, `kiln_builds_total{result="failed",rule="ok"}`) {
		t.Errorf("ok counted as failed")
	}

	// The pull-through cache: a cold pull misses, a warm one hits.
	img, _ := random.Image(1024, 2)
	upRef, _ := name.ParseReference(upHost+"/team/app:v1", name.Insecure)
	if err := remote.Write(upRef, img); err != nil {
		t.Fatal(err)
	}
	pullRef, _ := name.ParseReference(addr+"/up.example/team/app:v1", name.Insecure)
	for i := range 2 {
		if i == 1 {
			// The store commits a fetched blob after its client has it: a
			// pull before that would wait for the fetch, a miss again.
			waitForLog(t, &logs, 3, `"msg":"cached from upstream"`, `"digest"`, `"bytes"`)
		}
		pulled, err := remote.Image(pullRef)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pulled.RawConfigFile(); err != nil {
			t.Fatal(err)
		}
		layers, _ := pulled.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, rc)
			rc.Close()
		}
	}
	want(scrape(),
		`kiln_proxy_cache_requests_total{kind="blob",result="miss"} 3`,
		`kiln_proxy_cache_requests_total{kind="manifest",result="miss"} 1`,
		`kiln_proxy_cache_requests_total{kind="manifest",result="hit"} 1`,
		`kiln_proxy_cache_requests_total{kind="manifest",result="stale"} 0`,
		`kiln_proxy_upstream_blob_fetches_total 3`,
		`kiln_proxy_upstream_digest_mismatches_total 0`,
	)

	// The store scan counts what is on disk, after pushes and a GC.
	blobs, bytes := diskBlobs(t, cfg.Storage.Filesystem.Root)
	want(scrape(), fmt.Sprintf("kiln_stored_blobs %d", blobs), fmt.Sprintf("kiln_stored_bytes %d", bytes))
	orphan := []byte("an orphan blob no manifest references")
	od := digest.FromBytes(orphan)
	resp, err := http.Post("http://"+addr+"/v2/loose/blobs/uploads/?digest="+string(od), "application/octet-stream", strings.NewReader(string(orphan)))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("orphan upload: %v %v", resp.Status, err)
	}
	want(scrape(), fmt.Sprintf("kiln_stored_blobs %d", blobs+1), fmt.Sprintf("kiln_stored_bytes %d", bytes+int64(len(orphan))))
	if resp, err := http.Post("http://"+addr+"/kiln/v1/gc", "", nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("gc: %v %v", resp.Status, err)
	}
	afterBlobs, afterBytes := diskBlobs(t, cfg.Storage.Filesystem.Root)
	if afterBlobs > blobs {
		t.Errorf("gc left %d blobs on disk, more than the %d before the orphan", afterBlobs, blobs)
	}
	want(scrape(), fmt.Sprintf("kiln_stored_blobs %d", afterBlobs), fmt.Sprintf("kiln_stored_bytes %d", afterBytes), `kiln_gc_runs_total{result="ok"} 1`)

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkRequestIDs(t, logs.String())
}

// checkRequestIDs finds the access line of the cold manifest pull and the
// "cached from upstream" line its handler logged: same request_id.
func checkRequestIDs(t *testing.T, logs string) {
	t.Helper()
	ids := map[string]map[string]bool{} // access lines' request_ids by method+path
	var cached []map[string]any
	var buildLines int
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON log line: %q", sc.Text())
		}
		switch l["msg"] {
		case "request":
			k := fmt.Sprint(l["method"], " ", l["path"])
			if ids[k] == nil {
				ids[k] = map[string]bool{}
			}
			ids[k][fmt.Sprint(l["request_id"])] = true
		case "cached from upstream":
			cached = append(cached, l)
		case "build succeeded", "build failed":
			// Background builds name their build and rule, not a request.
			if l["build"] == nil || l["rule"] == nil || l["request_id"] != nil {
				t.Errorf("build line: %v", l)
			}
			buildLines++
		}
	}
	if buildLines != 2 {
		t.Errorf("%d build result lines, want 2", buildLines)
	}
	var manifestLines int
	for _, l := range cached {
		id, _ := l["request_id"].(string)
		if id == "" {
			t.Errorf("cache line without request_id: %v", l)
			continue
		}
		var path string
		if ref, ok := l["ref"]; ok {
			manifestLines++
			path = fmt.Sprint("GET /v2/up.example/team/app/manifests/", ref)
		} else {
			path = fmt.Sprint("GET /v2/up.example/team/app/blobs/", l["digest"])
		}
		if !ids[path][id] {
			t.Errorf("cache line request_id %s is not on an access line of %s (%v)", id, path, ids[path])
		}
	}
	if manifestLines != 1 || len(cached) != 4 {
		t.Errorf("%d cache lines, %d for manifests; want 4 and 1", len(cached), manifestLines)
	}
}

// waitForMetric scrapes until every line is there; builds and blob
// commits finish in the background. It fails after a generous minute.
func waitForMetric(t *testing.T, scrape func() string, lines ...string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		body := scrape()
		missing := ""
		for _, l := range lines {
			if !strings.Contains(body, l+"\n") {
				missing = l
			}
		}
		if missing == "" {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %q:\n%s", missing, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForLog waits until n lines contain every one of parts; it fails
// after a generous minute.
func waitForLog(t *testing.T, logs *syncBuffer, n int, parts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ok := logs.waitUntil(ctx, func(text string) bool {
		count := 0
		for _, l := range strings.Split(text, "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				count++
			}
		}
		return count >= n
	})
	if !ok {
		t.Fatalf("never %d log lines with %q", n, parts)
	}
}

var hexName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// diskBlobs counts the blob files of a filesystem store as the OS sees
// them: files named by a sha256 hex under a blobs/sha256/<xx>/ directory.
func diskBlobs(t *testing.T, root string) (int, int64) {
	t.Helper()
	var n int
	var size int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !hexName.MatchString(d.Name()) {
			return err
		}
		dir := filepath.Dir(p)
		if filepath.Base(dir) != d.Name()[:2] || filepath.Base(filepath.Dir(dir)) != "sha256" ||
			filepath.Base(filepath.Dir(filepath.Dir(dir))) != "blobs" || bytes.Contains([]byte(p), []byte("trash")) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n++
		size += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no blobs on disk: the layout check found nothing")
	}
	return n, size
}
