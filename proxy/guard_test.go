package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestHostPolicyAllows(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("https://registry.example")
	p := newHostPolicy("up", base, []string{"cdn.example", "auth.example:8443", "*.blobs.example", "[::1]:5000"})
	for target, want := range map[string]bool{
		"https://registry.example/v2/":     true,
		"https://registry.example:443/v2/": true,
		"https://registry.example:444/v2/": false, // another port is another host
		"http://registry.example/v2/":      false, // no downgrade from https
		"https://cdn.example/b":            true,
		"https://cdn.example:9000/b":       true,
		"https://auth.example:8443/token":  true,
		"https://auth.example/token":       false,
		"https://eu.blobs.example/b":       true,
		"https://blobs.example/b":          false,
		"https://evilblobs.example/b":      false,
		"https://[::1]:5000/b":             true,
		"https://127.0.0.1/b":              false,
		"https://registry.example.evil/b":  false,
	} {
		u, _ := url.Parse(target)
		if got := p.allows(u); got != want {
			t.Errorf("allows(%s) = %v, want %v", target, got, want)
		}
	}
}

// A listed host on a loopback address is dialed only when the upstream
// itself is on one: the check is on the address dialed, not the name.
func TestListedHostOnLoopbackNeedsUpstreamOnOne(t *testing.T) {
	t.Parallel()
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer internal.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(internal.URL, "http://"))
	base, _ := url.Parse("https://registry.example")
	p := newHostPolicy("up", base, []string{"localhost:" + port})
	dial := p.dialContext(&net.Dialer{})

	_, err := dial(context.Background(), "tcp", "localhost:"+port)
	var refusal *refusedError
	if !errors.As(err, &refusal) {
		t.Errorf("dial of a loopback redirect host for a public upstream: %v, want refused", err)
	}
	p.private.Store(true) // as after a dial of an upstream on a private address
	conn, err := dial(context.Background(), "tcp", "localhost:"+port)
	if err != nil {
		t.Fatalf("dial of a listed loopback host for an upstream on loopback: %v", err)
	}
	conn.Close()
}
