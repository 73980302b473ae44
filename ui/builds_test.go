package ui

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"kiln/buildhook"
	"kiln/storage"
)

func records(n int, rule string) []*buildhook.Record {
	var out []*buildhook.Record
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := n - 1; i >= 0; i-- { // newest first
		started, finished := t0.Add(time.Duration(i)*time.Minute), t0.Add(time.Duration(i)*time.Minute+3*time.Second)
		status := buildhook.StatusSucceeded
		if i%2 == 1 {
			status = buildhook.StatusFailed
		}
		out = append(out, &buildhook.Record{ID: fmt.Sprintf("20260301T000000-%06d-0001", i), Rule: rule, Status: status, Reason: "push",
			Queued: started, Started: &started, Finished: &finished})
	}
	return out
}

func TestBuildsPage(t *testing.T) {
	t.Parallel()
	b := &fakeBuilds{rules: []Rule{{Name: "app", Bases: []string{"base:1"}, Tags: []string{"app:latest"}}}, records: records(150, "app")}
	h := newUI(storage.NewInMemory(storage.Options{}), b)

	code, body := get(t, h, "/ui/builds?rule=app&status=failed")
	if code != 200 {
		t.Fatalf("GET builds: %d", code)
	}
	if q := b.queries[len(b.queries)-1]; q.Rule != "app" || q.Status != "failed" || q.Limit != perPage {
		t.Errorf("query %+v, want rule app, status failed, a page", q)
	}
	if n := strings.Count(body, `class="status st-failed"`); n != 75 {
		t.Errorf("%d failed builds shown, want 75", n)
	}
	mustContain(t, body, `data-trigger="app"`, `<option value="failed" selected>`, `<option value="app" selected>`)
	mustNotContain(t, body, "st-succeeded", `rel="next"`)

	_, body = get(t, h, "/ui/builds")
	mustContain(t, body, `href="/ui/builds?before=20260301T000000-000050-0001"`, `href="/ui/build?id=20260301T000000-000149-0001"`)
	mustNotContain(t, body, "data-trigger") // no rule chosen
	_, body = get(t, h, "/ui/builds?before=20260301T000000-000050-0001")
	if n := strings.Count(body, `href="/ui/build?id=`); n != 50 {
		t.Errorf("the older page shows %d builds, want 50", n)
	}

	// A rule that does not exist gets no trigger button.
	_, body = get(t, h, "/ui/builds?rule=nope")
	mustNotContain(t, body, "data-trigger")
}

func TestBuildPage(t *testing.T) {
	t.Parallel()
	recs := records(2, "app")
	recs[0].Status, recs[0].Finished = buildhook.StatusRunning, nil
	recs[1].Error = `<script>alert("x")</script>`
	h := newUI(storage.NewInMemory(storage.Options{}), &fakeBuilds{records: recs})

	code, body := get(t, h, "/ui/build?id="+recs[0].ID)
	if code != 200 {
		t.Fatalf("GET build: %d", code)
	}
	mustContain(t, body, `data-build="`+recs[0].ID+`"`, `data-done="false"`, `id="log"`, "st-running")
	_, body = get(t, h, "/ui/build?id="+recs[1].ID)
	mustContain(t, body, `data-done="true"`, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
	mustNotContain(t, body, `<script>alert`)
	if code, _ := get(t, h, "/ui/build?id=nope"); code != http.StatusNotFound {
		t.Errorf("unknown build: %d, want 404", code)
	}
}

func TestNoBuildService(t *testing.T) {
	t.Parallel()
	h := newUI(storage.NewInMemory(storage.Options{}), nil)
	for _, p := range []string{"/ui/builds", "/ui/build?id=x", "/ui/graph"} {
		if code, _ := get(t, h, p); code != http.StatusNotFound {
			t.Errorf("%s without builds: %d, want 404", p, code)
		}
	}
}
