package e2e

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ---------------------------------------------------------------- timings

// TestProxyPullTimings measures (and logs, not asserts) pulls of a ~20 MB,
// 5-layer image through kiln against pulls straight from the upstream,
// with kiln built both without and with the race detector.
func TestProxyPullTimings(t *testing.T) {
	needRegistry(t)
	plain, err := buildKilnPlain()
	if err != nil {
		t.Fatal(err)
	}
	raced, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	up := startUpstreamRegistry(t, false)
	const layers, layerSize, rounds = 5, 4 << 20, 3
	// One image per cold measurement: cold means kiln never saw it.
	seed := int64(700)
	pushImage := func(repo string) string {
		seed++
		up.push(t, repo, "v1", ociImage(t, layers, layerSize, seed))
		return repo + ":v1"
	}
	pull := func(ref string) (time.Duration, error) {
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		if err := pullBlobs(r); err != nil {
			return 0, fmt.Errorf("pull %s: %w", ref, err)
		}
		return time.Since(start), nil
	}
	once := func(ref string) time.Duration {
		t.Helper()
		d, err := pull(ref)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	concurrent := func(n int, ref string) time.Duration {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := time.Now()
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); _, errs[i] = pull(ref) }()
		}
		wg.Wait()
		took := time.Since(start)
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return took
	}
	median := func(ds []time.Duration) time.Duration {
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

	for _, build := range []struct{ label, bin string }{{"kiln without -race", plain}, {"kiln with -race", raced}} {
		// Straight to the upstream: no counting proxy in the way.
		k := startProxyKilnBin(t, build.bin, []proxyUpstream{{Name: "up.local", URL: "http://" + up.addr, TTL: time.Hour, Timeout: 30 * time.Second}}, "")
		var direct, cold, warm, direct10, cold10 []time.Duration
		for range rounds {
			img := pushImage(fmt.Sprintf("bench/one-%d", seed))
			once(up.addr + "/" + img) // the upstream's page cache is warm for both
			direct = append(direct, once(up.addr+"/"+img))
			cold = append(cold, once(k.addr+"/up.local/"+img))
			warm = append(warm, once(k.addr+"/up.local/"+img))

			img = pushImage(fmt.Sprintf("bench/ten-%d", seed))
			once(up.addr + "/" + img)
			direct10 = append(direct10, concurrent(10, up.addr+"/"+img))
			cold10 = append(cold10, concurrent(10, k.addr+"/up.local/"+img))
		}
		d, c, w, d10, c10 := median(direct), median(cold), median(warm), median(direct10), median(cold10)
		t.Logf("%s, %d layers x %d MiB, median of %d: direct %s; through kiln cold %s (%.2fx direct), warm %s (%.2fx direct)",
			build.label, layers, layerSize>>20, rounds, ms(d), ms(c), ratio(c, d), ms(w), ratio(w, d))
		t.Logf("%s, 10 concurrent pulls: direct %s; through kiln cold %s (%.2fx direct)",
			build.label, ms(d10), ms(c10), ratio(c10, d10))
	}
}

// pullBlobs fetches ref's manifest and every blob (verified against its
// digest), as a client pulling an image does.
func pullBlobs(ref name.Reference) error {
	img, err := remote.Image(ref)
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed() // verifies the digest at EOF
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
