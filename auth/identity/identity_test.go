package identity

import (
	"net/http/httptest"
	"testing"
)

func TestFromLoopback(t *testing.T) {
	for remote, want := range map[string]bool{
		"127.0.0.1:1": true, "127.9.9.9:1": true, "[::1]:1": true, "[::ffff:127.0.0.1]:1": true,
		"192.0.2.1:1": false, "[2001:db8::1]:1": false, "[fe80::1%lo]:1": false,
		"@": false, "": false, // a unix socket peer, none
	} {
		r := httptest.NewRequest("PUT", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "127.0.0.1")
		if got := FromLoopback(r); got != want {
			t.Errorf("RemoteAddr %q: loopback %v, want %v", remote, got, want)
		}
	}
}

func TestClient(t *testing.T) {
	r := httptest.NewRequest("PUT", "/", nil)
	r.RemoteAddr = "192.0.2.1:5"
	if got := Client(r); got != "address 192.0.2.1" {
		t.Errorf("anonymous: %q", got)
	}
	if got := Client(r.WithContext(WithUser(r.Context(), "192.0.2.1"))); got != "user 192.0.2.1" {
		t.Errorf("user named like an address: %q", got)
	}
}
