package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/config"
)

// openWrites builds the middleware runServe puts in front of the APIs
// for cfg, and returns it with what it logged at start.
func openWrites(t *testing.T, cfg *config.Config) (http.Handler, *syncBuffer) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	sec, err := newSecurity(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sec.close)
	return sec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })), &logs
}

func send(h http.Handler, method, path, remote string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// Finding: without auth.htpasswd anyone who reached the port could push,
// delete and trigger builds.
func TestWritesOnlyFromLoopbackWithoutAuth(t *testing.T) {
	t.Parallel()
	h, logs := openWrites(t, testConfig(t))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "loopback") {
		t.Errorf("no startup warning naming the loopback-only mode: %s", logs.String())
	}
	writes := [][2]string{
		{"PUT", "/v2/a/manifests/latest"},
		{"POST", "/v2/a/blobs/uploads/"},
		{"PATCH", "/v2/a/blobs/uploads/x"},
		{"DELETE", "/v2/a/manifests/sha256:00"},
		{"POST", "/kiln/v1/gc"},
		{"POST", "/kiln/v1/rules/app/trigger"},
	}
	for _, remote := range []string{"192.0.2.1:4000", "[2001:db8::1]:4000", "10.0.0.1:1"} {
		for _, wr := range writes {
			// X-Forwarded-For is the client's own word: never trusted.
			w := send(h, wr[0], wr[1], remote, "X-Forwarded-For", "127.0.0.1")
			var body struct {
				Errors []struct{ Code, Message string }
			}
			json.Unmarshal(w.Body.Bytes(), &body)
			if w.Code != 403 || len(body.Errors) != 1 || body.Errors[0].Code != "DENIED" ||
				!strings.Contains(body.Errors[0].Message, "auth.htpasswd") || !strings.Contains(body.Errors[0].Message, "auth.anonymous: push") {
				t.Fatalf("%s %s from %s: %d %s; want 403 DENIED saying how to open it", wr[0], wr[1], remote, w.Code, w.Body)
			}
		}
		for _, read := range [][2]string{{"GET", "/v2/a/manifests/latest"}, {"HEAD", "/v2/a/blobs/sha256:00"}, {"GET", "/kiln/v1/builds"}} {
			if w := send(h, read[0], read[1], remote); w.Code != 299 {
				t.Fatalf("%s %s from %s: %d, want it served", read[0], read[1], remote, w.Code)
			}
		}
	}
	for _, remote := range []string{"127.0.0.1:4000", "127.3.4.5:1", "[::1]:4000", "[::ffff:127.0.0.1]:4000"} {
		for _, wr := range writes {
			if w := send(h, wr[0], wr[1], remote); w.Code != 299 {
				t.Fatalf("%s %s from %s: %d %s, want it served", wr[0], wr[1], remote, w.Code, w.Body)
			}
		}
	}
}

func TestAnonymousPushOpensWrites(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Auth.Anonymous = config.AnonymousPush
	h, logs := openWrites(t, cfg)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "anyone") {
		t.Errorf("no startup warning that anyone may push: %s", logs.String())
	}
	if w := send(h, "PUT", "/v2/a/manifests/latest", "192.0.2.1:4000"); w.Code != 299 {
		t.Fatalf("push with auth.anonymous: push: %d %s", w.Code, w.Body)
	}
	cfg.Auth.Htpasswd = "/some/htpasswd"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "auth.anonymous") {
		t.Fatalf("push with auth.htpasswd accepted: %v", err)
	}
}
