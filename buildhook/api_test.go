package buildhook

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBuildAPI(t *testing.T) {
	t.Parallel()
	c := newChain(t)
	api := httptest.NewServer(c.svc.Handler())
	defer api.Close()
	get := func(path string, v any) int {
		t.Helper()
		resp, err := http.Get(api.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if v != nil {
			json.NewDecoder(resp.Body).Decode(v)
		}
		return resp.StatusCode
	}

	var rules []ruleView
	if get("/kiln/v1/rules", &rules) != 200 || len(rules) != 2 || rules[0].Name != "app" ||
		strings.Join(rules[0].Dependents, ",") != "tests" || !strings.HasSuffix(rules[0].Bases[0], "base:1") {
		t.Fatalf("rules: %+v", rules)
	}

	c.pushBase(t)
	c.waitIdle(t)

	// A manual trigger of app with nothing changed builds nothing, moves
	// no tag and so triggers nothing.
	trigger := func(query string) Record {
		t.Helper()
		resp, err := http.Post(api.URL+"/kiln/v1/rules/app/trigger"+query, "", nil)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("trigger%s: %v %v", query, resp.Status, err)
		}
		var trig struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&trig)
		resp.Body.Close()
		c.waitIdle(t)
		var one Record
		if get("/kiln/v1/builds/"+trig.ID, &one) != 200 || one.Rule != "app" || one.Reason != "manual" {
			t.Errorf("triggered build: %+v", one)
		}
		return one
	}
	var first []Record
	get("/kiln/v1/builds?rule=app", &first)
	appImage := digest.Digest(c.digestOf(t, "app:v1"))
	same := trigger("")
	if same.Status != StatusUnchanged || same.Result != appImage || same.Inputs != first[0].Inputs {
		t.Errorf("a trigger with the same inputs: %+v, want unchanged, result %s, inputs %s", same, appImage, first[0].Inputs)
	}
	lr, _ := http.Get(api.URL + "/kiln/v1/builds/" + same.ID + "/log?follow=1")
	log, _ := io.ReadAll(lr.Body)
	lr.Body.Close()
	if !strings.Contains(string(log), "unchanged: the same inputs as build "+first[0].ID) {
		t.Errorf("log: %q", log)
	}
	var all []Record
	if get("/kiln/v1/builds", &all) != 200 || len(all) != 3 {
		t.Errorf("%d builds, want 3: the unchanged one triggered nothing", len(all))
	}

	// --force builds again: the same inputs give the same image, byte for
	// byte, so still no tag moves.
	forced := trigger("?force=true")
	if forced.Status != StatusSucceeded || forced.Result != appImage {
		t.Errorf("a forced rebuild: %+v, want succeeded with the same image %s", forced, appImage)
	}
	var apps []Record
	get("/kiln/v1/builds?rule=app&status=succeeded", &apps)
	for _, r := range apps {
		if r.Rule != "app" || r.Status != StatusSucceeded {
			t.Errorf("filter let through %+v", r)
		}
	}
	if len(apps) != 2 {
		t.Errorf("%d succeeded app builds, want 2", len(apps))
	}
	lr, _ = http.Get(api.URL + "/kiln/v1/builds/" + forced.ID + "/log?follow=1")
	log, _ = io.ReadAll(lr.Body)
	lr.Body.Close()
	if !strings.Contains(string(log), "forced, building anyway") || !strings.Contains(string(log), "done: sha256:") {
		t.Errorf("log: %q", log)
	}
	if get("/kiln/v1/builds", &all) != 200 || len(all) != 4 {
		t.Errorf("%d builds, want 4", len(all))
	}

	// A change of the context builds, and cascades.
	if err := os.WriteFile(filepath.Join(c.svc.Graph().Rule("app").Context, "changed.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed := trigger(""); changed.Status != StatusSucceeded || changed.Result == appImage || changed.Inputs == first[0].Inputs {
		t.Errorf("a trigger after a context change: %+v", changed)
	}
	if get("/kiln/v1/builds", &all) != 200 || len(all) != 6 || all[0].Rule != "tests" {
		t.Errorf("%d builds, want 6, the newest of tests", len(all))
	}
	if code := func() int {
		r, _ := http.Post(api.URL+"/kiln/v1/rules/app/trigger?force=maybe", "", nil)
		return r.StatusCode
	}(); code != http.StatusBadRequest {
		t.Errorf("force=maybe: %d, want 400", code)
	}
	for _, p := range []string{"/kiln/v1/builds/nope", "/kiln/v1/builds/../../x/log", "/kiln/v1/other"} {
		if code := get(p, nil); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if r, _ := http.Post(api.URL+"/kiln/v1/rules/nope/trigger", "", nil); r.StatusCode != 404 {
		t.Errorf("trigger unknown rule: %d", r.StatusCode)
	}
	if code := get("/kiln/v1/builds?limit=x", nil); code != 400 {
		t.Errorf("bad limit: %d", code)
	}
}

// Builds queued or running when kiln stopped run again at the next start.
func TestServiceResumesInterruptedBuilds(t *testing.T) {
	t.Parallel()
	c := newChain(t)
	c.pushBase(t)
	c.waitIdle(t)
	// The context changes, so the resumed build has something to build.
	if err := os.WriteFile(filepath.Join(c.svc.Graph().Rule("app").Context, "changed.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A record left running by a process that died.
	stale := &Record{ID: newBuildID(), Rule: "app", Reason: "push", Status: StatusRunning}
	if err := c.svc.Records().Save(t.Context(), stale); err != nil {
		t.Fatal(err)
	}
	svc2, err := NewService(ServiceOptions{Store: c.store, TagMoves: c.moves, Rules: c.svc.Graph().Rules(), Registry: c.host, Hosts: []string{c.host}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc2.Wait)
	c.svc = svc2
	c.waitIdle(t)
	old, _ := svc2.Records().Get(t.Context(), stale.ID)
	if old.Status != StatusFailed || !strings.Contains(old.Error, "run again as build") {
		t.Fatalf("stale record: %+v", old)
	}
	id := old.Error[strings.LastIndex(old.Error, " ")+1:]
	again, err := svc2.Records().Get(t.Context(), id)
	if err != nil || again.Status != StatusSucceeded || again.Reason != "resume" {
		t.Errorf("resumed build %s: %+v %v", id, again, err)
	}
}

// A forced rebase onto the base the image is already on gives the same
// image, byte for byte: rebase builds are reproducible too.
func TestForcedRebaseIsReproducible(t *testing.T) {
	t.Parallel()
	c := newChainWith(t, "rebase")
	c.pushBase(t)
	c.waitIdle(t)
	c.pushBase(t) // now app is rebased, not built
	c.waitIdle(t)
	recs, _, err := c.svc.Records().Find(t.Context(), Query{Rule: "app", Limit: 1})
	if err != nil || len(recs) != 1 || recs[0].Builder != "rebase" || recs[0].Status != StatusSucceeded {
		t.Fatalf("the second build of app: %+v %v; want a rebase", recs, err)
	}
	rebased := c.digestOf(t, "app:v1")
	job, err := c.svc.Trigger("app", true)
	if err != nil {
		t.Fatal(err)
	}
	c.waitIdle(t)
	again, err := c.svc.Records().Get(t.Context(), job.ID)
	if err != nil || again.Status != StatusSucceeded || again.Builder != "rebase" {
		t.Fatalf("forced rebase: %+v %v", again, err)
	}
	if again.Result.String() != rebased || c.digestOf(t, "app:v1") != rebased {
		t.Errorf("forced rebase onto the same base gave %s, want %s", again.Result, rebased)
	}
}
