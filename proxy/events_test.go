package proxy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"kiln/notify"
	"kiln/storage"
)

// A manifest the cache stores from an upstream is a cache.fill event, in
// the outbox before the pull is answered; a warm pull is none.
func TestCacheFillIsAnEvent(t *testing.T) {
	t.Parallel()
	up := newUpstreamServer(t)
	img, _ := random.Image(1024, 1)
	want := up.push(t, "team/app", "v1", img)
	store := storage.NewInMemory(storage.Options{})
	k := newKilnProxyStore(t, up, time.Hour, 2*time.Second, store)
	n, err := notify.New(t.Context(), store, []notify.Endpoint{{URL: "http://hook.invalid/"}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k.proxy.SetNotifier(n)
	k.pull(t, "up.example/team/app:v1")
	k.pull(t, "up.example/team/app:v1")
	stored, err := store.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 {
		t.Fatalf("outbox holds %d events, want 1 cache fill", len(stored))
	}
	var e notify.Event
	json.Unmarshal(stored[0].Content, &e)
	if e.Type != notify.CacheFill || e.Repo != "up.example/team/app" || e.Tag != "v1" || e.Digest != want.String() || e.Upstream != "up.example" {
		t.Errorf("event %+v", e)
	}
}
