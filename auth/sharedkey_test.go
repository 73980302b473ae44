package auth

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// Authenticators given one TokenKey (a cluster's instances) accept each
// other's tokens, alice's and anonymous ones; without it each refuses the
// other's.
func TestSharedTokenKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte("alice:"+hashOf(t, "secret")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	instance := func(key []byte) *Authenticator {
		a, err := New(Options{Htpasswd: path, AnonymousPull: true, Realm: "kiln test", FailedLoginsPerMinute: 3,
			TokenKey: key, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	key := bytes.Repeat([]byte{7}, 32)
	a, b := instance(key), instance(bytes.Clone(key))
	for _, user := range []struct{ name, password, path string }{{"", "", "/v2/"}, {"alice", "secret", "/v2/a/manifests/latest"}} {
		code, tok := token(t, a, user.name, user.password)
		if code != 200 {
			t.Fatalf("token for %q from a: status %d", user.name, code)
		}
		if w, seen := withBearer(b, "GET", user.path, tok); w.Code != 200 || seen != user.name {
			t.Errorf("a's token for %q on b: status %d, user %q", user.name, w.Code, seen)
		}
	}

	c, d := instance(nil), instance(nil)
	_, tok := token(t, c, "", "")
	if w, _ := withBearer(d, "GET", "/v2/", tok); w.Code != 401 {
		t.Errorf("a token from one instance without a shared key, on another: status %d, want 401", w.Code)
	}
}
