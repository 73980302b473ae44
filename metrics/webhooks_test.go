package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWebhookMetrics(t *testing.T) {
	t.Parallel()
	m := New()
	record := m.Webhooks([]string{"keel", "ci"}, func() int { return 7 })
	record("keel", true)
	record("keel", false)
	record("keel", false)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`kiln_webhook_events_pending 7`,
		`kiln_webhook_deliveries_total{endpoint="keel",result="ok"} 1`,
		`kiln_webhook_deliveries_total{endpoint="keel",result="failed"} 2`,
		`kiln_webhook_deliveries_total{endpoint="ci",result="failed"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
