package auth

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/registry"
	"kiln/storage"
)

// TestClientsFollowChallenges runs go-containerregistry, which behaves
// like docker, against a registry behind the middleware: with anonymous
// pull it must pull without a login and push with one.
func TestClientsFollowChallenges(t *testing.T) {
	t.Parallel()
	for _, anonymous := range []bool{false, true} {
		a, _, _, _ := setup(t, anonymous)
		srv := httptest.NewServer(a.Handler(registry.New(storage.NewInMemory(storage.Options{}), registry.Options{})))
		host := strings.TrimPrefix(srv.URL, "http://")
		ref, _ := name.NewTag(host+"/app:v1", name.Insecure)
		img, _ := random.Image(100, 1)
		alice := remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})
		if err := remote.Write(ref, img); err == nil {
			t.Errorf("anonymous=%v: push without login accepted", anonymous)
		}
		if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "wrong"})); err == nil {
			t.Errorf("anonymous=%v: push with a wrong password accepted", anonymous)
		}
		if err := remote.Write(ref, img, alice); err != nil {
			t.Errorf("anonymous=%v: push with login: %v", anonymous, err)
		}
		_, err := remote.Image(ref)
		if anonymous && err != nil {
			t.Errorf("anonymous pull: %v", err)
		}
		if !anonymous && err == nil {
			t.Error("pull without login accepted")
		}
		if _, err := remote.Image(ref, alice); err != nil {
			t.Errorf("anonymous=%v: pull with login: %v", anonymous, err)
		}
		srv.Close()
	}
}
