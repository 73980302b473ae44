package accesslog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestContextHandlerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(ContextHandler(slog.NewJSONHandler(&buf, nil)))
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.With("component", "test").WarnContext(r.Context(), "inside the handler")
		logger.Info("no request context")
		w.WriteHeader(http.StatusTeapot)
	}), logger)
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	h.ServeHTTP(httptest.NewRecorder(), req)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 log lines, got:\n%s", buf.String())
	}
	var inside, plain, access map[string]any
	for i, v := range []*map[string]any{&inside, &plain, &access} {
		if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	if inside["msg"] != "inside the handler" || inside["request_id"] != "abc-123" || inside["component"] != "test" {
		t.Errorf("handler line: %v", inside)
	}
	if _, ok := plain["request_id"]; ok {
		t.Errorf("a line without the request context got a request_id: %v", plain)
	}
	if access["msg"] != "request" || access["request_id"] != "abc-123" {
		t.Errorf("access line: %v", access)
	}
	// ContextHandler must not add the id the access line already names.
	if n := strings.Count(lines[2], `"request_id"`); n != 1 {
		t.Errorf("access line names request_id %d times: %s", n, lines[2])
	}
}
