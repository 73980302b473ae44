package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"kiln/accesslog"
	"kiln/config"
)

// serveWithLogs runs kiln on cfg with a JSON logger at logLevel; stop ends
// it and returns the log, complete since runServe has returned.
func serveWithLogs(t *testing.T, cfg *config.Config, logLevel string) (addr string, stop func() string) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- runServe(ctx, cfg, newLogger(&logs, config.Log{Level: logLevel, Format: "json"}), ready)
	}()
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("runServe: %v", err)
	}
	stopOnce := sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runServe: %v", err)
		}
	})
	t.Cleanup(stopOnce)
	return addr, func() string { stopOnce(); return logs.String() }
}

type accessLine struct {
	Level, Msg, Method, Path string
	Status                   int
}

func accessLinesOf(t *testing.T, logs string) []accessLine {
	t.Helper()
	var out []accessLine
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var a accessLine
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if a.Msg == "request" {
			out = append(out, a)
		}
	}
	return out
}

// TestBuilderRequestsLogAtDebug: with authentication on, the requests of
// kiln's own builders (the internal credential) get debug access lines; a
// user's and an anonymous one keep info.
func TestBuilderRequestsLogAtDebug(t *testing.T) {
	t.Parallel()
	const user, password = "alice", "correct-horse-battery"
	cfg := testConfig(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	cfg.Auth.Htpasswd = filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(cfg.Auth.Htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sec, err := newSecurity(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sec.close()
	if sec.self.Username == "" {
		t.Fatal("authentication on, but the builders have no credential")
	}
	var logs bytes.Buffer
	logger := newLogger(&logs, config.Log{Level: "debug", Format: "json"})
	h := accesslog.New(authenticated(sec, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})),
		accesslog.Options{Logger: logger, Lines: accessLines(cfg.Log)})
	for _, c := range []struct{ path, user, password string }{
		{"/v2/builder/", sec.self.Username, sec.self.Password},
		{"/v2/alice/", user, password},
		{"/v2/anonymous/", "", ""},
	} {
		req := httptest.NewRequest("GET", c.path, nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.password)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	want := map[string]string{"/v2/builder/": "DEBUG", "/v2/alice/": "INFO", "/v2/anonymous/": "INFO"}
	got := map[string]string{}
	for _, l := range accessLinesOf(t, logs.String()) {
		got[l.Path] = l.Level
	}
	if !maps.Equal(got, want) {
		t.Errorf("access line levels %v, want %v", got, want)
	}
}

// TestLogRequestsErrors: with log.requests errors, a 200 gets no access
// line and a 404 does.
func TestLogRequestsErrors(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Log.Requests = config.LogRequestsErrors
	addr, stop := serveWithLogs(t, cfg, "info")
	for _, p := range []string{"/v2/", "/v2/nothing/manifests/here"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	lines := accessLinesOf(t, stop())
	if len(lines) != 1 || lines[0].Status != http.StatusNotFound {
		t.Errorf("access lines %+v, want only the 404", lines)
	}
}
