package metrics

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An unauthenticated client choosing the method (and the status it gets)
// must not be able to add label values: each one is a series kept forever.
func TestHostileRequestsAddNoSeries(t *testing.T) {
	t.Parallel()
	m := New()
	for i := range 2000 {
		r := httptest.NewRequest("GET", "/v2/app/manifests/v1", nil)
		r.Method = fmt.Sprintf("M%d", i)
		m.Observe(r, 401, 0, 0, time.Millisecond)
		m.Observe(r, 600+i, 0, 0, time.Millisecond)
	}
	for i := range 2000 {
		m.BuildDone(fmt.Sprintf("auto:e2e/img%d:v1", i), "succeeded", time.Second)
	}
	body := scrape(t, m)
	series := 0
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "kiln_http_requests_total{") || strings.HasPrefix(line, "kiln_builds_total{") {
			series++
		}
	}
	// other × {401, other} + auto × succeeded: a handful, not thousands.
	if series > 4 {
		t.Fatalf("%d series after hostile requests, want at most 4:\n%s", series, body)
	}
	wantLines(t, body,
		`kiln_http_requests_total{method="other",route="manifest",status="401"} 2000`,
		`kiln_builds_total{result="succeeded",rule="auto"} 2000`,
	)
}

func TestMethodLabel(t *testing.T) {
	t.Parallel()
	for method, want := range map[string]string{
		"GET": "GET", "HEAD": "HEAD", "PUT": "PUT", "PATCH": "PATCH", "POST": "POST",
		"DELETE": "DELETE", "OPTIONS": "OPTIONS", "get": "other", "BREW": "other", "": "other",
	} {
		if got := methodLabel(method); got != want {
			t.Errorf("methodLabel(%q) = %q, want %q", method, got, want)
		}
	}
}
