package buildhook

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/accesslog"
)

// brokenStore fails every read with a backend error that names what
// clients must not see.
type brokenStore struct{ recordStore }

const backendSecret = "s3://kiln-prod-bucket/builds: AccessDenied for key AKIAEXAMPLE"

func (brokenStore) BuildIDs(context.Context) ([]string, error) {
	return nil, errors.New(backendSecret)
}

func (brokenStore) BuildRecord(context.Context, string) ([]byte, error) {
	return nil, errors.New(backendSecret)
}

// The finding: /kiln/v1/ answered with the backend's own error text,
// which /v2/ hides. It now goes to the log, with the request id.
func TestBuildAPIHidesBackendErrors(t *testing.T) {
	t.Parallel()
	c := newChain(t)
	var logs bytes.Buffer
	c.svc.log = slog.New(accesslog.ContextHandler(slog.NewTextHandler(&logs, nil)))
	c.svc.records = newRecords(brokenStore{})
	api := httptest.NewServer(accesslog.Handler(c.svc.Handler(), slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer api.Close()
	for _, path := range []string{"/kiln/v1/builds", "/kiln/v1/builds/20260101T000000-000000-0001"} {
		logs.Reset()
		req, _ := http.NewRequest(http.MethodGet, api.URL+path, nil)
		req.Header.Set("X-Request-Id", "req-"+strings.ReplaceAll(path, "/", "-"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || strings.Contains(string(body), "kiln-prod-bucket") ||
			!strings.Contains(string(body), req.Header.Get("X-Request-Id")) {
			t.Errorf("GET %s: %s %s", path, resp.Status, body)
		}
		if !strings.Contains(logs.String(), "kiln-prod-bucket") || !strings.Contains(logs.String(), "request_id="+req.Header.Get("X-Request-Id")) {
			t.Errorf("GET %s: the log lacks the error or the request id:\n%s", path, logs.String())
		}
	}
}
