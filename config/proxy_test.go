package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestRedirectHosts(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
proxy:
  - name: docker.io
    url: https://registry-1.docker.io
  - name: ghcr.io
    url: https://ghcr.io
    redirect_hosts: []
  - name: quay.io
    url: https://quay.io
    redirect_hosts: ["*.quay.io", "cdn.example:8443", "[::1]:5000"]
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Proxy[0].RedirectHosts, []string{"auth.docker.io", "production.cloudflare.docker.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("docker.io redirect_hosts default: %q, want %q", got, want)
	}
	if got := cfg.Proxy[1].RedirectHosts; len(got) != 0 {
		t.Errorf("an explicit empty redirect_hosts became %q", got)
	}
	if got := cfg.Proxy[2].RedirectHosts; len(got) != 3 {
		t.Errorf("redirect_hosts: %q", got)
	}

	cfg, err = Parse([]byte(`
proxy:
  - name: up.example
    url: https://up.example
    redirect_hosts: ["https://cdn.example/path"]
`), "test.yml")
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "redirect_hosts[0]") {
		t.Errorf("a URL in redirect_hosts: %v", err)
	}
}
