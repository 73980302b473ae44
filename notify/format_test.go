package notify

import (
	"encoding/json"
	"testing"
	"time"
)

var src = Source{URL: "https://kiln.example", Addr: "kiln:5000", InstanceID: "i-1"}

func push() *Event {
	return &Event{ID: "0001-ab", Type: Push, Time: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC), Repo: "team/app", Tag: "v1",
		Digest: "sha256:abc", MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 123, Actor: "alice", Addr: "10.0.0.1:5555", Method: "PUT"}
}

func TestCloudEventsFormat(t *testing.T) {
	body, ct, ok, err := encode(CloudEvents, push(), src)
	if err != nil || !ok || ct != "application/cloudevents+json" {
		t.Fatalf("encode: %v %v %q", ok, err, ct)
	}
	var ce map[string]any
	if err := json.Unmarshal(body, &ce); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"specversion": "1.0", "id": "0001-ab", "source": "https://kiln.example", "type": "dev.kiln.push", "subject": "team/app:v1", "time": "2026-12-03T12:00:00Z"}
	for k, v := range want {
		if ce[k] != v {
			t.Errorf("%s = %v, want %v", k, ce[k], v)
		}
	}
	data := ce["data"].(map[string]any)
	if data["digest"] != "sha256:abc" || data["size"] != 123.0 || data["tag"] != "v1" {
		t.Errorf("data = %v", data)
	}
}

func TestDistributionFormat(t *testing.T) {
	body, ct, ok, err := encode(Distribution, push(), src)
	if err != nil || !ok || ct != "application/vnd.docker.distribution.events.v1+json" {
		t.Fatalf("encode: %v %v %q", ok, err, ct)
	}
	var env struct {
		Events []struct {
			ID, Action, Timestamp string
			Target                struct {
				MediaType, Digest, Repository, URL, Tag string
				Size                                    int64
			}
			Request struct{ Addr, Method, Host string }
			Actor   struct{ Name string }
			Source  struct {
				Addr       string
				InstanceID string `json:"instanceID"`
			}
		}
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	if len(env.Events) != 1 {
		t.Fatalf("%d events in the envelope", len(env.Events))
	}
	e := env.Events[0]
	if e.ID != "0001-ab" || e.Action != "push" || e.Target.Repository != "team/app" || e.Target.Tag != "v1" || e.Target.Digest != "sha256:abc" ||
		e.Target.Size != 123 || e.Target.MediaType == "" || e.Target.URL != "https://kiln.example/v2/team/app/manifests/sha256:abc" {
		t.Errorf("event %+v", e)
	}
	if e.Actor.Name != "alice" || e.Request.Addr != "10.0.0.1:5555" || e.Request.Host != "kiln.example" || e.Source.Addr != "kiln:5000" || e.Source.InstanceID != "i-1" {
		t.Errorf("actor/request/source %+v %+v %+v", e.Actor, e.Request, e.Source)
	}
	// Builds have no place in distribution's format: skipped, not failed.
	if _, _, ok, err := encode(Distribution, &Event{Type: BuildFailed}, src); ok || err != nil {
		t.Errorf("a build event in distribution's format: ok %v, err %v", ok, err)
	}
}
