package registry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

func TestManifestReadsAreNotedAsPulls(t *testing.T) {
	t.Parallel()
	store := storage.NewInMemory(storage.Options{})
	pulls := storage.NewPullLog(store)
	srv := httptest.NewServer(New(store, Options{Pulls: pulls}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(64, 1)
	ref, _ := name.ParseReference(host+"/team/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	// A push is not a pull.
	if got, _ := pulls.LastPulled(t.Context(), "team/app"); len(got) != 0 {
		t.Fatalf("pulls after a push: %v", got)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, srv.URL+"/v2/team/app/manifests/v1", nil)
		mt, _ := img.MediaType()
		req.Header.Set("Accept", string(mt))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", method, resp.Status, err)
		}
		resp.Body.Close()
	}
	if err := pulls.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := storage.NewPullLog(store).LastPulled(t.Context(), "team/app")
	if err != nil || len(got) != 1 || got[digest.Digest(d.String())].IsZero() {
		t.Errorf("stored pulls %v (%v), want %s", got, err, d)
	}
}
