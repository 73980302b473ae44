package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook"
	"kiln/storage"
)

// pushImage stores a linux/amd64 image with annotations in repo under
// tag, and returns its digest.
func pushImage(t testing.TB, s *storage.Store, repo, tag string, annotations map[string]string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	config := []byte(fmt.Sprintf(`{"os":"linux","architecture":"amd64","created":"2026-01-02T03:04:05Z","config":{"Labels":{"r":%q}}}`, repo+tag))
	layer := []byte("layer of " + repo + ":" + tag)
	for _, b := range [][]byte{config, layer} {
		if _, err := s.PutBlob(ctx, repo, digest.FromBytes(b), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     storage.MediaTypeOCIManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	}
	if annotations != nil {
		m["annotations"] = annotations
	}
	content, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := storage.ParseManifest(storage.MediaTypeOCIManifest, content)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(content)
	if err := s.PutManifest(ctx, repo, storage.Manifest{Digest: d, MediaType: storage.MediaTypeOCIManifest, Content: content}, parsed, tag); err != nil {
		t.Fatal(err)
	}
	return d
}

// fakeBuilds is a build service of fixed rules and records (newest first).
type fakeBuilds struct {
	rules   []Rule
	records []*buildhook.Record
	queries []buildhook.Query
}

func (f *fakeBuilds) Find(_ context.Context, q buildhook.Query) ([]*buildhook.Record, bool, error) {
	f.queries = append(f.queries, q)
	var out []*buildhook.Record
	for _, r := range f.records {
		if q.Before != "" && r.ID >= q.Before || q.Rule != "" && r.Rule != q.Rule || q.Status != "" && r.Status != q.Status {
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			return out, true, nil
		}
		out = append(out, r)
	}
	return out, false, nil
}

func (f *fakeBuilds) Get(_ context.Context, id string) (*buildhook.Record, error) {
	for _, r := range f.records {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, buildhook.ErrNoBuild
}

func (f *fakeBuilds) Rules() []Rule { return f.rules }

func newUI(s *storage.Store, b Builds) http.Handler {
	opts := Options{Catalog: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if b != nil {
		opts.Builds = b
	}
	return New(opts)
}

// get fetches path and returns the status and body.
func get(t testing.TB, h http.Handler, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w.Code, w.Body.String()
}

func mustContain(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
}

func mustNotContain(t *testing.T, body string, bad ...string) {
	t.Helper()
	for _, s := range bad {
		if strings.Contains(body, s) {
			t.Errorf("page contains %q", s)
		}
	}
}
