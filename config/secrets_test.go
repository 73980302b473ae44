package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An upstream's password need not sit in the config file: it may come from
// a file (a mounted secret) or an environment variable.
func TestUpstreamPasswordFromFileOrEnv(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hub-password")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KILN_TEST_GHCR_TOKEN", "from-env")
	path := filepath.Join(dir, "config.yml")
	body := "proxy:\n" +
		"  - {name: docker.io, url: https://registry-1.docker.io, username: u, password_file: " + secret + "}\n" +
		"  - {name: ghcr.io, url: https://ghcr.io, username: u, password_env: KILN_TEST_GHCR_TOKEN}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Proxy[0].Password; got != "from-file" {
		t.Errorf("password from file: %q, want from-file", got)
	}
	if got := cfg.Proxy[1].Password; got != "from-env" {
		t.Errorf("password from env: %q, want from-env", got)
	}

	for name, tc := range map[string]struct{ entry, want string }{
		"missing file": {"password_file: " + filepath.Join(dir, "nope"), "proxy[0].password_file"},
		"unset env":    {"password_env: KILN_TEST_UNSET_VARIABLE", "proxy[0].password_env"},
		"two sources":  {"password: x, password_env: KILN_TEST_GHCR_TOKEN", "proxy[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.yml")
			os.WriteFile(p, []byte("proxy:\n  - {name: docker.io, url: https://registry-1.docker.io, "+tc.entry+"}\n"), 0o600)
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error naming %s", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "from-env") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}
