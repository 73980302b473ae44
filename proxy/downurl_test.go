package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// The 502 for an unreachable upstream names the URL the operator
// configured, scheme included, not one the client library tried instead.
func TestUpstreamDownNamesConfiguredURL(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now: the upstream is down
	upURL := "http://" + addr
	store := storage.NewInMemory(storage.Options{})
	p, err := New(store, []config.Upstream{{Name: "up.example", URL: upURL, TTL: time.Hour, Timeout: 2 * time.Second}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(store, registry.Options{Upstream: p}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/up.example/team/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502: %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), upURL) || strings.Contains(string(body), "https://") {
		t.Errorf("502 body %s: want it to name %s and no https:// URL", body, upURL)
	}
}
