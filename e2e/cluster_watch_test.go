package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"
)

// headCountingUpstream is a registry serving one image as team/base:1,
// just enough for kiln's proxy (manifest HEAD and GET, blob GET), that
// notes when each HEAD of the tag came.
type headCountingUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	heads []time.Time
}

func startHeadCountingUpstream(t *testing.T) *headCountingUpstream {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mediaType, _ := img.MediaType()
	digest, _ := img.Digest()
	blobs := imageBlobs(t, img)
	u := &headCountingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case p == "/v2/" || p == "/v2":
			w.WriteHeader(http.StatusOK)
		case p == "/v2/team/base/manifests/1" || p == "/v2/team/base/manifests/"+digest.String():
			if r.Method == http.MethodHead && strings.HasSuffix(p, "/1") {
				u.mu.Lock()
				u.heads = append(u.heads, time.Now())
				u.mu.Unlock()
			}
			w.Header().Set("Content-Type", string(mediaType))
			w.Header().Set("Docker-Content-Digest", digest.String())
			w.Header().Set("Content-Length", fmt.Sprint(len(manifest)))
			if r.Method == http.MethodGet {
				w.Write(manifest)
			}
		case strings.HasPrefix(p, "/v2/team/base/blobs/"):
			b, ok := blobs[strings.TrimPrefix(p, "/v2/team/base/blobs/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			w.Header().Set("Docker-Content-Digest", strings.TrimPrefix(p, "/v2/team/base/blobs/"))
			if r.Method == http.MethodGet {
				w.Write(b)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// headsBetween counts the HEADs of the tag in [from, to).
func (u *headCountingUpstream) headsBetween(from, to time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, h := range u.heads {
		if !h.Before(from) && h.Before(to) {
			n++
		}
	}
	return n
}

// firstHeadAfter is the time of the first HEAD after t, if any.
func (u *headCountingUpstream) firstHeadAfter(t time.Time) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, h := range u.heads {
		if h.After(t) {
			return h, true
		}
	}
	return time.Time{}, false
}

// TestClusterWatchesOnceAcrossInstances: three kiln instances on one S3
// bucket and one PostgreSQL, each with the same proxy upstream and a
// build rule FROM a tag of it, poll that tag once per watch interval
// between them, not once each: one of them leads upstream watching. When
// the leader is killed with SIGKILL, another takes over and the polling
// goes on, still once per interval.
func TestClusterWatchesOnceAcrossInstances(t *testing.T) {
	const interval = time.Second
	const window = 6 // intervals counted
	up := startHeadCountingUpstream(t)
	c := startCluster(t, clusterOptions{Instances: 3, Heartbeat: time.Second, Extra: func(i int, dir string) string {
		writeContext(t, dir, "app", "FROM up.local/team/base:1\nCOPY app.txt /app.txt\n", "app.txt", "app")
		return fmt.Sprintf(`proxy:
  - name: up.local
    url: %s
    watch_interval: %s
buildhook:
  work_dir: ./work
builds:
  - name: app
    context: ./app
    tags: [team/app:v1]
    builder: native
`, up.URL, interval)
	}})

	// leaders lists the running instances that took the lead of upstream
	// watching (each process logs it once per time it takes it).
	leaders := func(skip int) []int {
		var ls []int
		for i := range 3 {
			if i != skip && len(c.Lines(i, "cluster: leading", "task="+"upstream-watch")) > 0 {
				ls = append(ls, i)
			}
		}
		return ls
	}
	waitFor(t, time.Minute, "a first HEAD", func() (bool, string) {
		_, ok := up.firstHeadAfter(time.Time{})
		return ok, "none yet"
	})

	// count measures HEADs over window intervals; with one poller they
	// are window, give or take one at each end.
	count := func(what string) int {
		from := time.Now()
		time.Sleep(window * interval) // the measuring window, not a wait for an event
		n := up.headsBetween(from, time.Now())
		t.Logf("%s: %d HEADs in %d intervals of %s (%.2f per interval)", what, n, window, interval, float64(n)/window)
		if n > window+1 || n < 1 {
			t.Errorf("%s: %d HEADs of the tag in %d watch intervals, want 1 to %d (one poller)", what, n, window, window+1)
		}
		return n
	}
	count("three instances")
	// An instance logs that it leads before it polls.
	ls := leaders(-1)
	if len(ls) != 1 {
		t.Fatalf("instances %v lead upstream watching, want one", ls)
	}
	leader := ls[0]
	t.Logf("instance %d leads upstream watching", leader)
	// kiln cluster status says so too.
	statusLeads := func(i int) bool {
		for l := range strings.Lines(c.Status(i)) {
			if strings.HasPrefix(l, c.InstanceID(leader)+" ") {
				return strings.Contains(l, "upstream-watch")
			}
		}
		return false
	}
	if !statusLeads((leader + 1) % 3) {
		t.Errorf("kiln cluster status does not show instance %d leading upstream-watch", leader)
	}

	killed := time.Now()
	c.Kill(leader)
	var took time.Time
	waitFor(t, time.Minute, "a HEAD after the leader was killed", func() (bool, string) {
		var ok bool
		took, ok = up.firstHeadAfter(killed)
		return ok, "none yet"
	})
	t.Logf("takeover: the first HEAD came %s after SIGKILL of the leader", took.Sub(killed).Round(time.Millisecond))
	ls = leaders(leader)
	if len(ls) != 1 {
		t.Fatalf("after the kill, instances %v lead upstream watching, want one", ls)
	}
	t.Logf("instance %d took over", ls[0])
	leader = ls[0]
	if !statusLeads(leader) {
		t.Errorf("kiln cluster status does not show instance %d leading upstream-watch", leader)
	}
	count("two instances after the kill")
}
