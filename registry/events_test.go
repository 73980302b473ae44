package registry

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"kiln/notify"
	"kiln/storage"
)

// A push and a delete are in the outbox by the time the client has its
// answer: a crash right after cannot lose them.
func TestPushAndDeleteReachTheOutboxBeforeTheAnswer(t *testing.T) {
	store := storage.NewInMemory(storage.Options{})
	n, err := notify.New(t.Context(), store, []notify.Endpoint{{URL: "http://hook.invalid/"}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// n never runs: nothing is delivered, everything stays in the outbox.
	srv := httptest.NewServer(New(store, Options{DeleteEnabled: true, Notify: n}))
	defer srv.Close()
	m, d := pushImage(t, srv, "team/app", "v1")
	if r := do(t, srv, "DELETE", "/v2/team/app/manifests/v1", nil); r.status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	stored, err := store.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 {
		t.Fatalf("outbox holds %d events, want 2 (push, delete)", len(stored))
	}
	var push, del notify.Event
	json.Unmarshal(stored[0].Content, &push)
	json.Unmarshal(stored[1].Content, &del)
	if push.Type != notify.Push || push.Repo != "team/app" || push.Tag != "v1" || push.Digest != string(d) || push.Size != int64(len(m)) || push.MediaType != ociManifest || push.Time.IsZero() {
		t.Errorf("push event %+v", push)
	}
	if del.Type != notify.Delete || del.Repo != "team/app" || del.Tag != "v1" {
		t.Errorf("delete event %+v", del)
	}
}
