package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"kiln/config"
)

func TestHealthURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		tls  bool
		want string
	}{
		{":5000", false, "http://127.0.0.1:5000/healthz"},
		{"0.0.0.0:5000", false, "http://127.0.0.1:5000/healthz"},
		{"[::]:5000", false, "http://[::1]:5000/healthz"},
		{"127.0.0.1:6000", false, "http://127.0.0.1:6000/healthz"},
		{"[::1]:6000", true, "https://[::1]:6000/healthz"},
		{"localhost:6000", true, "https://localhost:6000/healthz"},
	}
	for _, tc := range tests {
		h := config.HTTP{Addr: tc.addr}
		if tc.tls {
			h.TLS = config.TLS{Certificate: "c.pem", Key: "k.pem"}
		}
		got, err := healthURL(h)
		if err != nil || got != tc.want {
			t.Errorf("healthURL(%q, tls=%v) = %q, %v; want %q", tc.addr, tc.tls, got, err, tc.want)
		}
	}
	if _, err := healthURL(config.HTTP{Addr: "no-port"}); err == nil {
		t.Error("healthURL accepted an address without a port")
	}
}

// TestHealthcheckCommand runs the command against a live /healthz, a
// failing one and a closed port: only the first exits without error.
func TestHealthcheckCommand(t *testing.T) {
	var status atomic.Int32 // the server's goroutines read it
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	t.Chdir(t.TempDir()) // no ./config.yml to pick up
	run := func(addr string) (string, error) {
		cmd := newRootCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs([]string{"healthcheck", "--addr", addr})
		err := cmd.Execute()
		return out.String(), err
	}
	addr := srv.Listener.Addr().String()
	if out, err := run(addr); err != nil || out != "ok\n" {
		t.Errorf("healthy server: output %q, error %v; want \"ok\\n\", nil", out, err)
	}
	status.Store(http.StatusServiceUnavailable)
	if _, err := run(addr); err == nil {
		t.Error("a 503 from /healthz passed the health check")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if _, err := run(closed); err == nil {
		t.Errorf("nothing listening on %s passed the health check", closed)
	}
}
