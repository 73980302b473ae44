package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// gcTestReport is the part of POST /kiln/v1/gc's answer the GC tests read.
type gcTestReport struct {
	DryRun            bool    `json:"dryRun"`
	ManifestsMarked   int     `json:"manifestsMarked"`
	BlobsMarked       int     `json:"blobsMarked"`
	BlobsYoung        int     `json:"blobsYoung"`
	ManifestsSwept    int     `json:"manifestsSwept"`
	BlobsSwept        int     `json:"blobsSwept"`
	BytesFreed        int64   `json:"bytesFreed"`
	LinksSwept        int     `json:"linksSwept"`
	ManifestsRestored int     `json:"manifestsRestored"`
	BlobsRestored     int     `json:"blobsRestored"`
	TrashRecovered    int     `json:"trashRecovered"`
	DurationSeconds   float64 `json:"durationSeconds"`
}

// gcTestPOST runs POST /kiln/v1/gc on base. It returns the HTTP status (0
// when the request failed, e.g. kiln was killed) and the report on 200.
func gcTestPOST(ctx context.Context, base string, dryRun bool) (int, *gcTestReport, error) {
	u := base + "/kiln/v1/gc"
	if dryRun {
		u += "?dry_run=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, fmt.Errorf("POST %s: %s: %s", u, resp.Status, strings.TrimSpace(buf.String()))
	}
	var r gcTestReport
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("POST %s: %v: %s", u, err, buf.String())
	}
	return resp.StatusCode, &r, nil
}

// gcTestLayer is a deterministic random layer.
func gcTestLayer(t *testing.T, size int64, seed uint64) v1.Layer {
	t.Helper()
	l, err := random.Layer(size, types.OCILayer, random.WithSource(gcTestRandSource{rand.New(rand.NewPCG(seed, 7))}))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type gcTestRandSource struct{ r *rand.Rand }

func (s gcTestRandSource) Int63() int64 { return s.r.Int64() }
func (s gcTestRandSource) Seed(int64)   {}

// gcTestImage is an OCI image of the given layers, its config made unique by label.
func gcTestImage(t *testing.T, label string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Config.Labels = map[string]string{"kiln.e2e.gc": label}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// gcTestOrphan uploads content as a monolithic blob that no manifest references.
func gcTestOrphan(t *testing.T, base, repo string, content []byte) {
	t.Helper()
	if err := gcTestOrphanErr(base, repo, content); err != nil {
		t.Fatal(err)
	}
}

// gcTestOrphanErr is gcTestOrphan for goroutines other than the test's.
func gcTestOrphanErr(base, repo string, content []byte) error {
	dgst := sha256Digest(content)
	req, err := http.NewRequest(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+dgst, bytes.NewReader(content))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("orphan blob upload to %s: %w", repo, err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("orphan blob upload to %s: %s: %s", repo, resp.Status, body.String())
	}
	return nil
}

// countBlobFiles counts the blob files under a filesystem store's /blobs and /trash.
func countBlobFiles(t *testing.T, data string) (blobs, trash int) {
	t.Helper()
	count := func(dir string) int {
		n := 0
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if d.Type().IsRegular() {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v", dir, err)
		}
		return n
	}
	return count(filepath.Join(data, "blobs")), count(filepath.Join(data, "trash"))
}

type gcTagged struct {
	ref    string // repo:tag
	digest v1.Hash
}

// TestGCCrash SIGKILLs kiln (filesystem store, grace 200ms, delete_untagged)
// in the middle of online garbage collections, round after round, on the
// same data, then checks that every tagged image still pulls and validates,
// `kiln fsck` finds nothing wrong and the garbage does go.
func TestGCCrash(t *testing.T) {
	needSetup(t)
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "kiln.yml")
	cfg := "version: 1\nstorage:\n  gc:\n    grace: 200ms\n    delete_untagged: true\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The first start takes a free port; restarts come back on it, since the
	// clients keep that address across rounds.
	var addr, base string
	starts := 0
	launch := func() *kilnServer {
		t.Helper()
		starts++
		srv, err := launchKiln(bin, "gccrash", dir, fmt.Sprintf("kiln-%d.log", starts), nil, addr, "--config", cfgPath, "--data", data)
		if err != nil {
			if srv != nil {
				srv.printTail(crashLogWriter{t}, 40)
			}
			t.Fatal(err)
		}
		if addr == "" {
			addr = srv.env.Addr
			base = srv.env.URL
		}
		return srv
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	srv := launch()

	// Tagged images: 4 repositories, 3 tags each, sharing two base layers.
	shared := []v1.Layer{gcTestLayer(t, 64<<10, seed+1), gcTestLayer(t, 32<<10, seed+2)}
	var tagged []gcTagged
	moving := map[string]v1.Hash{} // repo:moving -> the image it names now
	push := func(ref string, img v1.Image) v1.Hash {
		t.Helper()
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	nLayer := uint64(100)
	uniqueLayer := func(size int64) v1.Layer {
		nLayer++
		return gcTestLayer(t, size, seed+nLayer)
	}
	for r := range 4 {
		for tg := range 3 {
			ref := fmt.Sprintf("%s/gccrash/r%d:t%d", addr, r, tg)
			img := gcTestImage(t, ref, append(shared[:2:2], uniqueLayer(16<<10))...)
			tagged = append(tagged, gcTagged{ref: ref, digest: push(ref, img)})
		}
	}

	// Garbage, made anew each round: orphan blobs, manifests whose tag moved
	// on (with their own layers), manifests pushed by digest only.
	garbage := func(round int) {
		t.Helper()
		for i := range 100 {
			content := fmt.Appendf(nil, "gccrash orphan seed %d round %d blob %d %s", seed, round, i, strings.Repeat("x", rng.IntN(4096)))
			gcTestOrphan(t, base, fmt.Sprintf("gccrash/r%d", i%4), content)
		}
		for i := range 4 {
			repo := fmt.Sprintf("%s/gccrash/r%d", addr, i)
			push(repo+":moving", gcTestImage(t, fmt.Sprintf("moving %d/%d a", round, i), shared[0], uniqueLayer(8<<10)))
			moving[repo+":moving"] = push(repo+":moving", gcTestImage(t, fmt.Sprintf("moving %d/%d b", round, i), uniqueLayer(8<<10)))
			img := gcTestImage(t, fmt.Sprintf("bydigest %d/%d", round, i), shared[1], uniqueLayer(8<<10))
			d, _ := img.Digest()
			push(repo+"@"+d.String(), img)
		}
	}
	// The "moving" tags are tagged too: they must survive.
	checkTagged := func(when string, full bool) {
		t.Helper()
		all := append([]gcTagged(nil), tagged...)
		for ref, d := range moving {
			all = append(all, gcTagged{ref: ref, digest: d})
		}
		for _, tg := range all {
			r, _ := name.ParseReference(tg.ref, name.Insecure)
			repo, ref := r.Context().RepositoryStr(), r.Identifier()
			if !full {
				if got := checkManifestTree(t, &registryEnv{URL: base}, repo, ref); got != tg.digest.String() {
					t.Errorf("%s: %s is %s, pushed %s", when, tg.ref, got, tg.digest)
				}
				continue
			}
			img, err := remote.Image(r, remote.WithContext(ctx))
			if err != nil {
				t.Errorf("LOST %s: pull %s: %v", when, tg.ref, err)
				continue
			}
			if d, _ := img.Digest(); d != tg.digest {
				t.Errorf("%s: %s is %s, pushed %s", when, tg.ref, d, tg.digest)
			}
			if err := validate.Image(img); err != nil {
				t.Errorf("LOST %s: %s does not validate: %v", when, tg.ref, err)
			}
		}
	}

	const rounds = 7
	phases := []string{"recover", "mark", "sweep", "recheck", "delete"}
	var blobsStart int
	kills, cutMidGC, danglingAfterKill := 0, 0, 0
	for round := 1; round <= rounds; round++ {
		garbage(round)
		if round == 1 {
			blobsStart, _ = countBlobFiles(t, data)
		}
		ageFiles(t, data, time.Second) // all of it older than the grace period

		// Kill at a random moment: after a random phase has started (it
		// shows in kiln's log), plus 0-30 ms; or blindly 0-150 ms after the
		// request, every third round.
		logBefore, _ := os.ReadFile(srv.stderr)
		gcDone := make(chan struct{})
		var report *gcTestReport
		var gcErr error
		t0 := time.Now()
		go func() {
			defer close(gcDone)
			_, report, gcErr = gcTestPOST(ctx, base, false)
		}()
		phase := phases[(round-1)%len(phases)]
		extra := time.Duration(rng.IntN(31)) * time.Millisecond
		how := ""
		if round%3 == 0 {
			extra = time.Duration(rng.IntN(151)) * time.Millisecond
			how = fmt.Sprintf("blind, %s after the POST", extra)
			time.Sleep(extra) // a random moment to kill at, not a wait for anything
		} else {
			how = fmt.Sprintf("%s after phase %q began", extra, phase)
			seen := false
		wait:
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
				b, _ := os.ReadFile(srv.stderr)
				if len(b) >= len(logBefore) && bytes.Contains(b[len(logBefore):], []byte("gc: "+phase+":")) {
					seen = true
					break
				}
				select {
				case <-gcDone:
					break wait
				case <-time.After(time.Millisecond):
				}
			}
			if !seen {
				how += " (the phase did not show in the log before the GC ended)"
			}
			time.Sleep(extra) // a random moment to kill at, not a wait for anything
		}
		at := time.Since(t0)
		srv.kill()
		kills++
		<-gcDone
		state := "GC cut off"
		if gcErr == nil && report != nil {
			state = fmt.Sprintf("GC had finished (swept %d manifests, %d blobs in %.0f ms)", report.ManifestsSwept, report.BlobsSwept, report.DurationSeconds*1000)
		} else {
			cutMidGC++
		}
		if b, err := os.ReadFile(srv.stderr); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("round %d: the race detector reported a DATA RACE in kiln (see %s)", round, srv.stderr)
		}
		blobs, trash := countBlobFiles(t, data)
		t.Logf("round %d: SIGKILL %s after the GC request (%s); %s; on disk: %d blobs, %d in the trash",
			round, at.Round(time.Millisecond), how, state, blobs, trash)

		// Killed between deleting a blob and deleting its _layers links,
		// the collection leaves those links dangling until the next one
		// deletes them: fsck right after the kill reports them (counted,
		// logged); anything else it reports fails the test. The fsck at
		// the end, after a completed collection, must be clean.
		danglingAfterKill += gcCrashFsck(t, bin, dir, data, fmt.Sprintf("after the kill of round %d", round))
		srv = launch()
		checkTagged(fmt.Sprintf("after the kill of round %d", round), false)
		if t.Failed() {
			break
		}
	}

	// A full collection on the restarted kiln, then a dry run that must
	// find nothing left to sweep, with everything older than the grace
	// period (files dated back) before each.
	ageFiles(t, data, time.Second)
	_, final, err := gcTestPOST(ctx, base, false)
	if err != nil {
		t.Fatalf("final GC: %v", err)
	}
	t.Logf("final GC: recovered %d from the trash; marked %d manifests, %d blobs; swept %d manifests, %d blobs (%d bytes, %d links); %d claimed back; %.0f ms",
		final.TrashRecovered, final.ManifestsMarked, final.BlobsMarked, final.ManifestsSwept, final.BlobsSwept, final.BytesFreed, final.LinksSwept,
		final.BlobsRestored+final.ManifestsRestored, final.DurationSeconds*1000)
	ageFiles(t, data, time.Second)
	_, dry, err := gcTestPOST(ctx, base, true)
	if err != nil {
		t.Fatalf("dry-run GC: %v", err)
	}
	if dry.BlobsSwept != 0 || dry.ManifestsSwept != 0 {
		t.Errorf("after the final GC a dry run would still sweep %d manifests, %d blobs", dry.ManifestsSwept, dry.BlobsSwept)
	}
	blobsEnd, trashEnd := countBlobFiles(t, data)
	t.Logf("blobs on disk: %d after the first round's garbage, %d at the end (%d marked), %d in the trash", blobsStart, blobsEnd, dry.BlobsMarked, trashEnd)
	if blobsEnd >= blobsStart {
		t.Errorf("garbage did not go: %d blobs at the start, %d at the end", blobsStart, blobsEnd)
	}
	if blobsEnd != dry.BlobsMarked {
		t.Errorf("%d blob files on disk but %d blobs marked: garbage left over", blobsEnd, dry.BlobsMarked)
	}
	if trashEnd != 0 {
		t.Errorf("%d files left in the trash after a completed GC", trashEnd)
	}

	if cutMidGC == 0 {
		t.Errorf("no kill in %d rounds landed while a collection ran: nothing here tested recovery from one", rounds)
	}
	checkTagged("at the end", true)
	if err := srv.stop(); err != nil {
		t.Error(err)
	}
	crashFsck(t, bin, dir, data, "at the end")
	t.Logf("total: %d rounds, %d kills (%d mid-GC), %d tagged images checked, %d kiln starts; fsck right after a kill found %d dangling _layers links (gone after the next GC)",
		rounds, kills, cutMidGC, len(tagged)+len(moving), starts, danglingAfterKill)
}

// gcCrashFsck runs `kiln fsck` on the stopped data directory right after a
// kill mid-GC. It fails the test on any problem but dangling _layers links
// (see TestGCCrash), which it counts.
func gcCrashFsck(t *testing.T, bin, dir, data, when string) int {
	t.Helper()
	r := runCmd(t, cmdOpts{Dir: dir, Timeout: 2 * time.Minute, Quiet: true}, bin, "fsck", "--quiet", "--data", data)
	t.Logf("fsck %s: %s", when, lastLineWithPrefix(r.Stdout, "checked ")+"; "+lastLineWithPrefix(r.Stdout, ""))
	dangling, other := 0, 0
	for _, l := range strings.Split(r.Stdout, "\n") {
		switch {
		case strings.HasPrefix(l, "PROBLEM layer-dangling "):
			dangling++
			t.Logf("fsck %s: %s", when, l)
		case strings.HasPrefix(l, "PROBLEM "):
			other++
		}
	}
	if other > 0 || (r.Err != nil && dangling == 0) || (dangling == 0 && !strings.Contains(r.Stdout, "\n0 problems")) {
		t.Errorf("kiln fsck %s: %v\n%s", when, r.Err, tail(r.Stdout, 40))
	}
	return dangling
}
