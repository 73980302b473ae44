package config

import (
	"strings"
	"testing"
)

func TestOpsValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yaml    string
		wantKey string // "" means valid
	}{
		{"auth: {htpasswd: /etc/kiln/htpasswd, anonymous: pull}\n", ""},
		{"http: {tls: {certificate: c.pem, key: k.pem}}\n", ""},
		{"limits: {max_blob_size: 1048576}\n", ""},
		{"auth: {anonymous: push}\n", ""},
		{"auth: {anonymous: pull}\n", "auth.anonymous"},
		{"auth: {anonymous: everyone}\n", "auth.anonymous"},
		{"auth: {htpasswd: h, anonymous: push}\n", "auth.anonymous"},
		{"auth: {realm: \"\"}\n", "auth.realm"},
		{"auth: {failed_logins_per_minute: 0}\n", "auth.failed_logins_per_minute"},
		{"http: {tls: {certificate: c.pem}}\n", "http.tls"},
		{"http: {stall_timeout: 0s}\n", "http.stall_timeout"},
		{"http: {read_header_timeout: -1s}\n", "http.read_header_timeout"},
		{"limits: {max_blob_size: -1}\n", "limits.max_blob_size"},
		{"limits: {max_manifest_size: 0}\n", "limits.max_manifest_size"},
		{"limits: {max_concurrent_uploads: 0}\n", "limits.max_concurrent_uploads"},
	} {
		cfg, err := Parse([]byte(tc.yaml), "x.yml")
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		err = cfg.Validate()
		switch {
		case tc.wantKey == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tc.wantKey+":")):
			t.Errorf("%q: error %v, want one naming %s", tc.yaml, err, tc.wantKey)
		}
	}
}

func TestIdleTimeoutMustBeDuration(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte("http:\n  idle_timeout: 5\n"), "x.yml")
	if err == nil || !strings.Contains(err.Error(), "http.idle_timeout") {
		t.Fatalf("err = %v, want one naming http.idle_timeout", err)
	}
}
