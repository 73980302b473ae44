package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNotificationEndpoints(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook-secret")
	os.WriteFile(secret, []byte("from-file\n"), 0o600)
	t.Setenv("KILN_TEST_HOOK_SECRET", "from-env")
	p := filepath.Join(dir, "config.yml")
	body := "notifications:\n  max_backoff: 1m\n  endpoints:\n" +
		"    - {name: keel, url: https://keel.example/hook, format: distribution, events: [push], headers: {Authorization: Bearer t}, secret_file: " + secret + "}\n" +
		"    - {url: http://ci.example/hook, secret_env: KILN_TEST_HOOK_SECRET, timeout: 2s}\n"
	os.WriteFile(p, []byte(body), 0o600)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Notifications.Endpoints
	if len(e) != 2 || e[0].Secret != "from-file" || e[1].Secret != "from-env" || e[0].Headers["Authorization"] != "Bearer t" {
		t.Fatalf("endpoints %+v", e)
	}
	if e[0].Timeout != 10*time.Second || e[1].Timeout != 2*time.Second || e[1].MaxBackoff != time.Minute || e[1].Format != FormatCloudEvents {
		t.Errorf("defaults not applied: %+v", e[1])
	}
	for name, tc := range map[string]struct{ entry, want string }{
		"bad url":        {"url: ftp://x", "notifications.endpoints[0].url"},
		"bad format":     {"url: http://x, format: json", "notifications.endpoints[0].format"},
		"bad event":      {"url: http://x, events: [pull]", "notifications.endpoints[0].events"},
		"two secrets":    {"url: http://x, secret: a, secret_env: KILN_TEST_HOOK_SECRET", "notifications.endpoints[0]"},
		"backoff bounds": {"url: http://x, min_backoff: 1m, max_backoff: 1s", "notifications.endpoints[0].max_backoff"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "config.yml")
			os.WriteFile(p, []byte("notifications:\n  endpoints:\n    - {"+tc.entry+"}\n"), 0o600)
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v, want an error naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "from-env") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	os.WriteFile(p, []byte("notifications:\n  timeout: soon\n"), 0o600)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "notifications.timeout") {
		t.Errorf("a bad duration: %v", err)
	}
}
