package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func wantLines(t *testing.T, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("metrics lack %q", w)
		}
	}
}

func TestBuildAndProxyMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	m.BuildDone("app", "succeeded", 3*time.Second)
	m.BuildDone("app", "succeeded", 40*time.Second)
	m.BuildDone("app", "failed", 2*time.Second)
	m.BuildQueue(func() (int, int) { return 4, 1 })
	m.ProxyCacheLabels([]string{"manifest", "blob"}, []string{"hit", "miss"})
	m.ProxyCache("manifest", "hit")
	m.ProxyCache("manifest", "hit")
	m.ProxyCache("blob", "miss")
	wantLines(t, scrape(t, m),
		`kiln_builds_total{result="succeeded",rule="app"} 2`,
		`kiln_builds_total{result="failed",rule="app"} 1`,
		`kiln_build_duration_seconds_bucket{result="succeeded",rule="app",le="5"} 1`,
		`kiln_build_duration_seconds_bucket{result="succeeded",rule="app",le="60"} 2`,
		`kiln_build_duration_seconds_sum{result="succeeded",rule="app"} 43`,
		`kiln_build_duration_seconds_count{result="failed",rule="app"} 1`,
		`kiln_builds_queued 4`,
		`kiln_builds_running 1`,
		`kiln_proxy_cache_requests_total{kind="manifest",result="hit"} 2`,
		`kiln_proxy_cache_requests_total{kind="manifest",result="miss"} 0`,
		`kiln_proxy_cache_requests_total{kind="blob",result="miss"} 1`,
		`kiln_proxy_cache_requests_total{kind="blob",result="hit"} 0`,
	)
}

// fakeStore is a StoreScan whose answers the test sets, counting scans.
type fakeStore struct {
	blobs int
	bytes int64
	err   error
	scans int
}

func (f *fakeStore) scan(context.Context) (int, int64, error) {
	f.scans++
	return f.blobs, f.bytes, f.err
}

func TestStoreUsageRescansAfterChanges(t *testing.T) {
	t.Parallel()
	m := New()
	f := &fakeStore{blobs: 2, bytes: 300}
	// No minimum interval and no expiry: only changes cause a rescan.
	m.StoreUsage(f.scan, 0, time.Duration(1<<62))
	wantLines(t, scrape(t, m), `kiln_stored_blobs 2`, `kiln_stored_bytes 300`)

	f.blobs, f.bytes = 3, 500
	wantLines(t, scrape(t, m), `kiln_stored_blobs 2`, `kiln_stored_bytes 300`)
	if f.scans != 1 {
		t.Errorf("%d scans with nothing changed, want 1", f.scans)
	}

	// A finished blob upload may have added a blob.
	m.Observe(httptest.NewRequest("PUT", "/v2/app/blobs/uploads/x", nil), 201, 200, 0, time.Millisecond)
	wantLines(t, scrape(t, m), `kiln_stored_blobs 3`, `kiln_stored_bytes 500`)

	// So may a blob the cache fetched; a hit changes nothing.
	f.blobs = 4
	m.ProxyCache("manifest", "hit")
	wantLines(t, scrape(t, m), `kiln_stored_blobs 3`)
	m.ProxyCache("blob", "miss")
	wantLines(t, scrape(t, m), `kiln_stored_blobs 4`)

	// A pushed manifest is stored as a blob too; a failed push adds none.
	f.blobs = 5
	m.Observe(httptest.NewRequest("PUT", "/v2/app/manifests/v1", nil), 400, 200, 0, time.Millisecond)
	wantLines(t, scrape(t, m), `kiln_stored_blobs 4`)
	m.Observe(httptest.NewRequest("PUT", "/v2/app/manifests/v1", nil), 201, 200, 0, time.Millisecond)
	wantLines(t, scrape(t, m), `kiln_stored_blobs 5`)

	// A collection frees blobs; a failed scan keeps the last counts.
	f.blobs, f.bytes = 1, 100
	f.err = errors.New("store down")
	m.GCRun(3, 400, 1, nil)
	wantLines(t, scrape(t, m), `kiln_stored_blobs 5`)
	f.err = nil
	wantLines(t, scrape(t, m), `kiln_stored_blobs 1`, `kiln_stored_bytes 100`)
}

func TestStoreUsageWaitsMinInterval(t *testing.T) {
	t.Parallel()
	m := New()
	f := &fakeStore{blobs: 1}
	m.StoreUsage(f.scan, time.Duration(1<<62), time.Duration(1<<62))
	scrape(t, m)
	f.blobs = 2
	m.Observe(httptest.NewRequest("PUT", "/v2/app/blobs/uploads/x", nil), 201, 200, 0, time.Millisecond)
	wantLines(t, scrape(t, m), `kiln_stored_blobs 1`)
	if f.scans != 1 {
		t.Errorf("%d scans inside the minimum interval, want 1", f.scans)
	}
}

func TestStoreUsageFirstScanFails(t *testing.T) {
	t.Parallel()
	m := New()
	f := &fakeStore{err: errors.New("store down")}
	m.StoreUsage(f.scan, 0, 0)
	body := scrape(t, m) // the rest of the page is still served
	if strings.Contains(body, "kiln_stored_blobs ") || !strings.Contains(body, "kiln_uploads_in_flight 0") {
		t.Errorf("with a failing first scan:\n%s", body)
	}
}

// The web UI's storage page reads the counts the metrics keep: it shares
// their scans instead of walking the store on every view.
func TestStoredUsageSharesScans(t *testing.T) {
	t.Parallel()
	m := New()
	if _, _, _, err := m.StoredUsage(); err == nil {
		t.Error("StoredUsage without StoreUsage: no error")
	}
	f := &fakeStore{blobs: 2, bytes: 300}
	m.StoreUsage(f.scan, time.Duration(1<<62), time.Duration(1<<62))
	blobs, bytes, at, err := m.StoredUsage()
	if err != nil || blobs != 2 || bytes != 300 || time.Since(at) > time.Minute {
		t.Errorf("StoredUsage: %d blobs, %d bytes, at %s, %v", blobs, bytes, at, err)
	}
	wantLines(t, scrape(t, m), `kiln_stored_blobs 2`)
	m.StoredUsage()
	if f.scans != 1 {
		t.Errorf("%d scans for a scrape and two reads with nothing changed, want 1", f.scans)
	}
	f.err = errors.New("store down")
	m2 := New()
	m2.StoreUsage(f.scan, 0, 0)
	if _, _, _, err := m2.StoredUsage(); err == nil {
		t.Error("a failing first scan: no error")
	}
}
