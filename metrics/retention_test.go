package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRetentionMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	record := m.Retention()
	record(3, 2, false, time.Unix(1_800_000_000, 0))
	record(1, 0, true, time.Unix(1_800_000_100, 0))
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`kiln_retention_runs_total{result="ok"} 1`,
		`kiln_retention_runs_total{result="error"} 1`,
		`kiln_retention_deleted_total{kind="tag"} 4`,
		`kiln_retention_deleted_total{kind="manifest"} 2`,
		`kiln_retention_last_run_timestamp_seconds 1.8000001e+09`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
