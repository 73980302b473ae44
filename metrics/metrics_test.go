package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRoute(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/v2/":                              "base",
		"/v2/_catalog":                      "catalog",
		"/v2/a/b/blobs/uploads/":            "blob_upload",
		"/v2/a/b/blobs/uploads/123":         "blob_upload",
		"/v2/a/blobs/sha256:ab":             "blob",
		"/v2/a/manifests/v1":                "manifest",
		"/v2/a/tags/list":                   "tags",
		"/v2/a/referrers/sha256:ab":         "referrers",
		"/kiln/v1/builds":                   "builds",
		"/kiln/v1/gc":                       "gc",
		"/metrics":                          "metrics",
		"/etc/passwd":                       "other",
		"/v2/manifests-repo/blobs/uploads/": "blob_upload",
	} {
		if got := Route("GET", path); got != want {
			t.Errorf("Route(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	m := New()
	r := httptest.NewRequest("GET", "/v2/app/manifests/v1", nil)
	m.Observe(r, 200, 0, 512, 3*time.Millisecond)
	m.Observe(httptest.NewRequest("PUT", "/v2/app/blobs/uploads/x", nil), 201, 1024, 0, time.Millisecond)
	m.GCRun(3, 4096, 10, nil)
	block := make(chan struct{})
	inside := make(chan struct{})
	h := m.TrackUploads(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inside)
		<-block
	}))
	go h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("PATCH", "/v2/app/blobs/uploads/x", nil))
	<-inside
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	close(block)
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`kiln_http_requests_total{method="GET",route="manifest",status="200"} 1`,
		`kiln_http_response_bytes_total{route="manifest"} 512`,
		`kiln_http_request_bytes_total{route="blob_upload"} 1024`,
		`kiln_http_request_duration_seconds_bucket{method="GET",route="manifest",le="0.005"} 1`,
		`kiln_uploads_in_flight 1`,
		`kiln_gc_runs_total{result="ok"} 1`,
		`kiln_gc_freed_bytes_total 4096`,
		`kiln_gc_kept_blobs 10`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
