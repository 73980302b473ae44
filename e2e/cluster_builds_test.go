package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// clusterBuilds lists the build records through instance i's API.
func clusterBuilds(t *testing.T, c *kilnCluster, i int) []buildRecord {
	t.Helper()
	resp, body := doHTTP(t, "GET", c.URL(i)+"/kiln/v1/builds?limit=1000", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /kiln/v1/builds on kiln %d: %s %s", i, resp.Status, body)
	}
	var recs []buildRecord
	if err := json.Unmarshal(body, &recs); err != nil {
		t.Fatal(err)
	}
	return recs
}

// ofRule keeps the records of rule, newest first.
func ofRule(recs []buildRecord, rule string) []buildRecord {
	var out []buildRecord
	for _, r := range recs {
		if r.Rule == rule {
			out = append(out, r)
		}
	}
	return out
}

// instanceIndex maps a record's instance to the harness's index.
func instanceIndex(t *testing.T, c *kilnCluster, id string, n int) int {
	t.Helper()
	for i := range n {
		if c.InstanceID(i) == id {
			return i
		}
	}
	t.Fatalf("no instance is %q", id)
	return -1
}

// TestClusterBurstBuildsEachRuleOnce: three instances share the S3 server
// and one PostgreSQL; 50 pushes of a base tag, spread over the three,
// build each rule at most twice, never two at once, and the built tags
// end on the last base. The webhook receiver the three share gets each
// push once, in push order.
func TestClusterBurstBuildsEachRuleOnce(t *testing.T) {
	const pushes = 50
	const secret = "cluster-secret"
	hooks := newHookReceiver(t, secret)
	c := startCluster(t, clusterOptions{Instances: 3, Extra: func(i int, dir string) string {
		writeContext(t, dir, "app", "FROM kiln.cluster:5000/base:1\nCOPY app.txt /app.txt\n", "app.txt", "app")
		writeContext(t, dir, "tests", "FROM kiln.cluster:5000/app:v1\nCOPY tests.txt /tests.txt\n", "tests.txt", "tests")
		return fmt.Sprintf(`notifications:
  min_backoff: 50ms
  max_backoff: 400ms
  endpoints:
    - {name: e2e, url: %q, secret: %q, timeout: 2s, events: [push]}
`, hooks.srv.URL, secret) + `registry:
  hostnames: [kiln.cluster:5000]
buildhook:
  window: 2s
  work_dir: ./work
builds:
  - name: app
    context: ./app
    tags: [app:v1]
    builder: native
  - name: tests
    context: ./tests
    tags: [tests:v1]
    builder: native
`
	}})
	// The bases go in by digest first (no tag moves), then the tag moves
	// through them back to back, each move on the next instance.
	var bases []v1.Image
	for i := range pushes {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		pushImage(t, c.URL(i%3), "base@"+d.String(), img)
		bases = append(bases, img)
	}
	start := time.Now()
	var want []hookExpect
	for i, img := range bases {
		tag, _ := name.NewTag(hostOf(c.URL(i%3))+"/base:1", name.Insecure)
		if err := remote.Tag(tag, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		want = append(want, hookExpect{"push", "base", "1", d.String()})
	}
	t.Logf("%d tag moves over 3 instances in %s", pushes, time.Since(start).Round(time.Millisecond))
	last, _ := bases[pushes-1].Digest()

	var recs []buildRecord
	waitFor(t, 3*time.Minute, "both rules built on the last base", func() (bool, string) {
		recs = clusterBuilds(t, c, 2)
		busy := 0
		for _, r := range recs {
			if r.Status == "queued" || r.Status == "running" {
				busy++
			}
		}
		tests := ofRule(recs, "tests")
		return busy == 0 && len(tests) > 0 && tests[0].Status == "succeeded", fmt.Sprintf("%d records, %d busy", len(recs), busy)
	})
	for _, rule := range []string{"app", "tests"} {
		rs := ofRule(recs, rule)
		on := map[string]int{}
		for _, r := range rs {
			on[r.Instance]++
			if r.Status != "succeeded" {
				t.Errorf("%s build %s: %s %q", rule, r.ID, r.Status, r.Error)
			}
		}
		t.Logf("rule %s: %d builds for %d pushes, by instance %v", rule, len(rs), pushes, on)
		if len(rs) < 1 || len(rs) > 2 {
			t.Errorf("rule %s built %d times for one burst, want 1 or 2", rule, len(rs))
		}
	}
	hooks.waitFor(t, want, time.Minute)
	sent, dups, lost := hooks.report(t, want)
	t.Logf("webhooks from three instances: %d deliveries, %d duplicates, %d of %d tag pushes lost or out of order", sent, dups, lost, pushes)
	if dups != 0 || lost != 0 {
		t.Errorf("webhooks: %d duplicates, %d lost or out of order", dups, lost)
	}
	if apps := ofRule(recs, "app"); len(apps) > 0 && apps[0].TriggerDigest != last.String() {
		t.Errorf("app's last build was triggered by %s, want the last push %s", apps[0].TriggerDigest, last)
	}
	for _, repoTag := range []string{"app:v1", "tests:v1"} {
		base := (&buildKilnEnv{addr: hostOf(c.URL(1))}).manifestAnnotations(t, repoTag)["org.opencontainers.image.base.digest"]
		want := last.String()
		if repoTag == "tests:v1" {
			want = ofRule(recs, "app")[0].Result
		}
		if base != want {
			t.Errorf("%s is built on %s, want %s", repoTag, base, want)
		}
	}
}

// writeContext writes a build context: its Dockerfile and one file.
func writeContext(t *testing.T, dir, context, dockerfile, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, context), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"Dockerfile": dockerfile, file: content} {
		if err := os.WriteFile(filepath.Join(dir, context, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func hostOf(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
}

func pushImage(t *testing.T, url, repoRef string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(hostOf(url)+"/"+repoRef, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

// TestClusterBuildsSurviveInstances: a build runs on one instance of
// three; restarting another instance meanwhile runs nothing twice, and a
// third follows its log live (kiln builds logs -f). Then the instance
// running the next build is killed with SIGKILL: another takes the build
// over once the claim runs out and finishes it.
//
// The builds are held where the test chooses: their base comes through
// the pull-through cache from an upstream that answers the base's config
// only when the test opens its gate.
func TestClusterBuildsSurviveInstances(t *testing.T) {
	up := startGatedUpstream(t)
	c := startCluster(t, clusterOptions{Instances: 3, Extra: func(i int, dir string) string {
		writeContext(t, dir, "app", "FROM up.local/team/base:1\nCOPY app.txt /app.txt\n", "app.txt", "app")
		return fmt.Sprintf(`proxy:
  - name: up.local
    url: %s
    watch_interval: 1s
    timeout: 3m
buildhook:
  work_dir: ./work
builds:
  - name: app
    context: ./app
    tags: [team/app:v1]
    builder: native
`, up.URL)
	}})
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}

	// running waits for a build of app with reason (and not id skip) to
	// run, and returns it with the index of its instance. It asks an
	// instance that is up: any answers for the whole cluster.
	running := func(reason, skip string) (buildRecord, int) {
		var got buildRecord
		waitFor(t, 2*time.Minute, "a running build ("+reason+")", func() (bool, string) {
			up := 0
			for c.killed[up] {
				up++
			}
			for _, r := range ofRule(clusterBuilds(t, c, up), "app") {
				if r.Status == "running" && r.Reason == reason && r.ID != skip {
					got = r
					return true, ""
				}
			}
			return false, "none yet"
		})
		return got, instanceIndex(t, c, got.Instance, 3)
	}

	// 1. The first build, held at its base's config.
	first, on := running("push", "")
	follower, restarted := (on+1)%3, (on+2)%3
	t.Logf("build %s runs on kiln %d; kiln %d follows its log, kiln %d restarts", first.ID, on, follower, restarted)
	shown := false
	for l := range strings.Lines(c.Status(follower)) {
		shown = shown || strings.HasPrefix(l, c.InstanceID(on)+" ") && strings.Contains(l, first.ID+" (app)")
	}
	if !shown {
		t.Errorf("kiln cluster status does not show build %s on kiln %d:\n%s", first.ID, on, c.Status(follower))
	}
	var logs strings.Builder
	var followErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		cmd := exec.Command(bin, "builds", "logs", "-f", first.ID, "--server", c.URL(follower))
		cmd.Stdout, cmd.Stderr = &logs, &logs
		followErr = cmd.Run()
	})
	c.Restart(restarted)
	if got := ofRule(clusterBuilds(t, c, restarted), "app"); len(got) != 1 || got[0].Status != "running" {
		t.Fatalf("after kiln %d restarted: %+v, want build %s alone, still running", restarted, got, first.ID)
	}
	up.open(1)
	wg.Wait()
	if followErr != nil {
		t.Errorf("kiln builds logs -f on kiln %d: %v\n%s", follower, followErr, logs.String())
	}
	for _, want := range []string{"build " + first.ID + " of rule app", "done: "} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("kiln %d followed:\n%s\nmissing %q", follower, logs.String(), want)
		}
	}
	recs := ofRule(clusterBuilds(t, c, follower), "app")
	if len(recs) != 1 || recs[0].Status != "succeeded" {
		t.Fatalf("after one upstream move and a restart: %+v, want one succeeded build", recs)
	}

	// 2. The upstream tag moves; the instance that runs its build dies.
	up.move(2)
	second, on := running("push", first.ID)
	killed := time.Now()
	c.Kill(on)
	t.Logf("killed kiln %d (SIGKILL) while it ran build %s", on, second.ID)
	resumed, by := running("resume", "")
	took := resumed.Started.Sub(killed)
	t.Logf("kiln %d took the build over as %s, %s after the kill (lease %s)", by, resumed.ID, took.Round(time.Millisecond), 3*time.Second)
	if by == on {
		t.Fatalf("the killed instance runs the resumed build")
	}
	up.open(2)
	waitFor(t, 2*time.Minute, "the resumed build", func() (bool, string) {
		for _, r := range clusterBuilds(t, c, by) {
			if r.ID == resumed.ID {
				return r.Status == "succeeded", r.Status + " " + r.Error
			}
		}
		return false, "gone"
	})
	recs = ofRule(clusterBuilds(t, c, by), "app")
	if len(recs) != 3 {
		t.Errorf("%d builds of app, want 3 (first, the one cut off, its resume): %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.ID == second.ID && (r.Status != "failed" || !strings.Contains(r.Error, "stopped renewing its claim") || !strings.Contains(r.Error, "run again as build "+resumed.ID)) {
			t.Errorf("the build cut off: %s %q", r.Status, r.Error)
		}
	}
	ann := (&buildKilnEnv{addr: hostOf(c.URL(by))}).manifestAnnotations(t, "team/app:v1")
	if got, want := ann["org.opencontainers.image.base.digest"], up.digest(2); got != want {
		t.Errorf("team/app:v1 is built on %s, want the upstream's second image %s", got, want)
	}
}
