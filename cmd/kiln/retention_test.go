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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"kiln/config"
	"kiln/retention"
	"kiln/storage"
)

// seedTags stores an image per tag in repo of the filesystem store at
// dir, and dates each tag as pushed (the tag file's modification time).
func seedTags(t *testing.T, dir, repo string, pushed map[string]time.Time) {
	t.Helper()
	ctx := t.Context()
	s, err := storage.NewFilesystem(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for tag, when := range pushed {
		put := func(content string) v1.Descriptor {
			d := digest.FromString(content)
			if _, err := s.PutBlob(ctx, repo, d, strings.NewReader(content)); err != nil {
				t.Fatal(err)
			}
			return v1.Descriptor{Digest: d, Size: int64(len(content))}
		}
		cfg, layer := put(`{"architecture":"amd64","tag":"`+tag+`"}`), put("layer of "+tag)
		cfg.MediaType, layer.MediaType = v1.MediaTypeImageConfig, v1.MediaTypeImageLayerGzip
		body, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": v1.MediaTypeImageManifest, "config": cfg, "layers": []v1.Descriptor{layer}})
		p, err := storage.ParseManifest(v1.MediaTypeImageManifest, body)
		if err != nil {
			t.Fatal(err)
		}
		m := storage.Manifest{Digest: digest.FromBytes(body), MediaType: v1.MediaTypeImageManifest, Content: body}
		if err := s.PutManifest(ctx, repo, m, p, tag); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, "repositories", repo, "_tags", tag), when, when); err != nil {
			t.Fatal(err)
		}
	}
}

// kiln retention run, dry and then real, against a running kiln: the dry
// run deletes nothing and lists what the real run deletes; tags a build
// rule produces or builds on stay; the log and /metrics tell.
func TestRetentionRunCommand(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	now := time.Now()
	seedTags(t, cfg.Storage.Filesystem.Root, "team/app", map[string]time.Time{
		"v1": now.Add(-3 * time.Hour), "v2": now.Add(-2 * time.Hour), "v3": now.Add(-time.Hour),
		"base": now.Add(-9 * time.Hour), "built": now.Add(-8 * time.Hour),
	})
	seedTags(t, cfg.Storage.Filesystem.Root, "other", map[string]time.Time{"v1": now.Add(-9 * time.Hour), "v2": now})
	cfg.Registry.Hostnames = []string{"kiln.test"}
	bctx := t.TempDir()
	os.WriteFile(filepath.Join(bctx, "Dockerfile"), []byte("FROM kiln.test/team/app:base\nCOPY f /f\n"), 0o644)
	os.WriteFile(filepath.Join(bctx, "f"), []byte("hi"), 0o644)
	cfg.Builds = []config.Build{{Name: "app", Context: bctx, Dockerfile: "Dockerfile", Tags: []string{"team/app:built"}, Builder: "native", Strategy: "build", Network: "none"}}
	cfg.Retention.Policies = []config.RetentionPolicy{{Repositories: "team/*", KeepLast: 1}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	addr, stop := startServe(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	server := "http://" + addr
	kiln := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetOut(&out)
		cmd.SetArgs(append(append([]string{"retention", "run"}, args...), "--server", server))
		if err := cmd.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("kiln retention run %v: %v", args, err)
		}
		return out.String()
	}
	tags := func(repo string) []string {
		t.Helper()
		resp, err := http.Get(server + "/v2/" + repo + "/tags/list")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct{ Tags []string }
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		slices.Sort(list.Tags)
		return list.Tags
	}

	out := kiln("--dry-run", "--json")
	var dry retention.Report
	if err := json.Unmarshal([]byte(out), &dry); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	var planned []string
	for _, d := range dry.Tags {
		planned = append(planned, d.Repository+":"+d.Tag)
	}
	var protected []string
	for _, d := range dry.Protected {
		protected = append(protected, d.Tag)
	}
	slices.Sort(protected)
	if !dry.DryRun || !slices.Equal(planned, []string{"team/app:v1", "team/app:v2"}) || !slices.Equal(protected, []string{"base", "built"}) {
		t.Fatalf("dry run: planned %v, protected %v (report %+v)", planned, protected, dry)
	}
	if got := tags("team/app"); len(got) != 5 {
		t.Fatalf("the dry run deleted tags: %v left", got)
	}

	out = kiln()
	for _, want := range []string{"deleted tag team/app:v1: not among the 1 most recently pushed tags", "deleted tag team/app:v2", "kept tag team/app:base: protected", "retention: 1 repositories; deleted 2 tags, 0 manifests; 2 protected tags kept"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got, want := tags("team/app"), []string{"base", "built", "v3"}; !slices.Equal(got, want) {
		t.Errorf("team/app keeps %v, want %v", got, want)
	}
	if got := tags("other"); len(got) != 2 {
		t.Errorf("other keeps %v: no policy matches it", got)
	}

	resp, err := http.Get(server + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`kiln_retention_deleted_total{kind="tag"} 2`, `kiln_retention_deleted_total{kind="manifest"} 0`, `kiln_retention_runs_total{result="ok"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	stop() // the log is complete once kiln has stopped
	logged := logs.String()
	for _, want := range []string{"retention: would delete", "msg=\"retention: deleted\" kind=tag repository=team/app tag=v1", "trigger=api dry_run=false", "tags=2"} {
		if !strings.Contains(logged, want) {
			t.Errorf("logs lack %q:\n%s", want, logged)
		}
	}
}

// retention.interval runs the policies on a schedule.
func TestRetentionLoop(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	now := time.Now()
	seedTags(t, cfg.Storage.Filesystem.Root, "team/app", map[string]time.Time{"old": now.Add(-time.Hour), "new": now})
	cfg.Retention = config.Retention{Interval: 50 * time.Millisecond, Policies: []config.RetentionPolicy{{Repositories: "**", KeepLast: 1}}}
	var logs syncBuffer
	_, stop := startServe(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	wait, cancelWait := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelWait()
	if !logs.waitFor(wait, "deleted 1 tags") {
		t.Errorf("no scheduled run deleted the old tag:\n%s", logs.String())
	}
	stop() // the log is complete once kiln has stopped
	out := logs.String()
	for _, want := range []string{"retention scheduled", "trigger=schedule", "repository=team/app tag=old"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	s, err := storage.NewFilesystem(cfg.Storage.Filesystem.Root, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tags, err := s.Tags(t.Context(), "team/app"); err != nil || !slices.Equal(tags, []string{"new"}) {
		t.Errorf("tags %v, %v", tags, err)
	}
}
