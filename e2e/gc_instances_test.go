package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// gcSection is a storage.gc config section for launchS3Kiln.
func gcSection(grace time.Duration, deleteUntagged bool) string {
	return fmt.Sprintf("  gc:\n    grace: %s\n    delete_untagged: %t\n", grace, deleteUntagged)
}

// TestGCWhileOtherInstancePushes: two kiln instances on one S3 bucket;
// A collects garbage in a loop (grace 2s, delete_untagged) while B takes
// concurrent pushes of images sharing layers, some of them pushed long
// enough before to be unreferenced and past the grace period when a push
// reuses them. Every image B acknowledged must then pull and validate
// through A.
func TestGCWhileOtherInstancePushes(t *testing.T) {
	needSetup(t)
	s3 := startS3Server(t)
	runID := fmt.Sprintf("s3gc%s-%d", time.Now().UTC().Format("150405"), os.Getpid())
	root := "/kiln-" + runID
	const grace = 2 * time.Second
	a := launchS3Kiln(t, s3, runID, root, "gc-a", gcSection(grace, true))
	b := launchS3Kiln(t, s3, runID, root, "push-b", gcSection(grace, true))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	repo := "e2e/" + runID + "/gcshared"

	// A pool of layers the images share. Each is first uploaded to the
	// repository on its own (no manifest): unreferenced garbage once the
	// grace period has passed, until a push claims it.
	const poolSize = 12
	pool := make([]v1.Layer, poolSize)
	for i := range pool {
		pool[i] = gcTestLayer(t, int64(16<<10+i*4<<10), seed+uint64(i)+1)
		bl, err := pool[i].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		buf, err := io.ReadAll(bl)
		bl.Close()
		if err != nil {
			t.Fatal(err)
		}
		gcTestOrphan(t, b.env.URL, repo, buf)
	}
	// Until A counts the whole pool as garbage: past the grace period on
	// the S3 server's clock, as A measures it.
	waitFor(t, grace+time.Minute, "the unreferenced pool older than the grace period", func() (bool, string) {
		status, r, err := gcTestPOST(ctx, a.env.URL, true)
		if err != nil || status != http.StatusOK {
			return false, fmt.Sprintf("dry run: %d %v", status, err)
		}
		return r.BlobsSwept >= poolSize, fmt.Sprintf("a dry run would sweep %d blobs of %d", r.BlobsSwept, poolSize)
	})

	// A collects in a loop until the pushes are done.
	var gcRuns, gcConflicts, gcSweptB, gcSweptM, gcRestored atomic.Int64
	var gcErrs []error
	var gcMu sync.Mutex
	stopGC := make(chan struct{})
	gcLoopDone := make(chan struct{})
	go func() {
		defer close(gcLoopDone)
		for {
			select {
			case <-stopGC:
				return
			default:
			}
			status, r, err := gcTestPOST(ctx, a.env.URL, false)
			switch {
			case status == http.StatusConflict:
				gcConflicts.Add(1)
			case err != nil:
				gcMu.Lock()
				gcErrs = append(gcErrs, err)
				gcMu.Unlock()
				time.Sleep(100 * time.Millisecond) // not to spin on a failing server
			default:
				gcRuns.Add(1)
				gcSweptB.Add(int64(r.BlobsSwept))
				gcSweptM.Add(int64(r.ManifestsSwept))
				gcRestored.Add(int64(r.BlobsRestored + r.ManifestsRestored))
			}
		}
	}()

	// 4 pushers × 10 images through B, each image 2-3 pool layers and one
	// of its own; between images, garbage: an orphan blob and a manifest
	// whose tag moves on.
	const pushers, perPusher = 4, 10
	type pushed struct {
		ref    string
		digest v1.Hash
	}
	var (
		mu         sync.Mutex
		acked      []pushed
		pushFails  []string
		pushBlobUn int
	)
	// The images and layers are built here, on the test's goroutine.
	type plannedPush struct {
		label        string
		img, scratch v1.Image
		pause        time.Duration
	}
	plans := make([][]plannedPush, pushers)
	for p := range pushers {
		rng := rand.New(rand.NewPCG(seed, uint64(p)+100))
		for i := range perPusher {
			var layers []v1.Layer
			for _, k := range rng.Perm(poolSize)[:2+rng.IntN(2)] {
				layers = append(layers, pool[k])
			}
			layers = append(layers, gcTestLayer(t, 8<<10, seed+uint64(1000+p*100+i)))
			label := fmt.Sprintf("p%d-v%d", p, i)
			plans[p] = append(plans[p], plannedPush{
				label:   label,
				img:     gcTestImage(t, label, layers...),
				scratch: gcTestImage(t, "scratch "+label, pool[rng.IntN(poolSize)], gcTestLayer(t, 4<<10, seed+uint64(5000+p*100+i))),
				pause:   time.Duration(rng.IntN(1500)) * time.Millisecond,
			})
		}
	}
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) {
				mu.Lock()
				pushFails = append(pushFails, fmt.Sprintf(format, args...))
				mu.Unlock()
			}
			for i, pl := range plans[p] {
				ref := fmt.Sprintf("%s/%s:%s", b.env.Addr, repo, pl.label)
				r, _ := name.ParseReference(ref, name.Insecure)
				err := remote.Write(r, pl.img, remote.WithContext(ctx))
				d, _ := pl.img.Digest()
				mu.Lock()
				if err != nil {
					var te *transport.Error
					if errors.As(err, &te) && te.StatusCode == http.StatusBadRequest {
						pushBlobUn++
					}
					pushFails = append(pushFails, fmt.Sprintf("%s: %v", pl.label, err))
				} else {
					acked = append(acked, pushed{ref: fmt.Sprintf("%s:%s", repo, pl.label), digest: d})
				}
				mu.Unlock()

				// Garbage for A to find.
				if err := gcTestOrphanErr(b.env.URL, repo, fmt.Appendf(nil, "orphan %d %d %d", seed, p, i)); err != nil {
					fail("orphan %s: %v", pl.label, err)
				}
				sr, _ := name.ParseReference(fmt.Sprintf("%s/%s:scratch-p%d", b.env.Addr, repo, p), name.Insecure)
				if err := remote.Write(sr, pl.scratch, remote.WithContext(ctx)); err != nil {
					fail("scratch %s: %v", pl.label, err)
				}
				time.Sleep(pl.pause) // the pushes' pace (random), not a wait for anything
			}
		}()
	}
	t0 := time.Now()
	wg.Wait()
	pushTime := time.Since(t0)
	// Everything past the grace period, then more collections on A.
	close(stopGC)
	<-gcLoopDone
	waitFor(t, grace+time.Minute, "no unreferenced blob within the grace period", func() (bool, string) {
		status, r, err := gcTestPOST(ctx, a.env.URL, true)
		if err != nil || status != http.StatusOK {
			return false, fmt.Sprintf("dry run: %d %v", status, err)
		}
		return r.BlobsYoung == 0, fmt.Sprintf("%d unreferenced blobs within the grace period", r.BlobsYoung)
	})
	for range 2 {
		_, r, err := gcTestPOST(ctx, a.env.URL, false)
		if err != nil {
			t.Fatalf("final GC on A: %v", err)
		}
		gcRuns.Add(1)
		gcSweptB.Add(int64(r.BlobsSwept))
		gcSweptM.Add(int64(r.ManifestsSwept))
		t.Logf("final GC on A: marked %d manifests, %d blobs; swept %d manifests, %d blobs; %.0f ms",
			r.ManifestsMarked, r.BlobsMarked, r.ManifestsSwept, r.BlobsSwept, r.DurationSeconds*1000)
	}
	for _, e := range gcErrs {
		t.Errorf("GC on A failed: %v", e)
	}
	for _, f := range pushFails {
		t.Errorf("push through B failed: %s", f)
	}

	losses := 0
	for _, p := range acked {
		ref := a.env.Addr + "/" + p.ref
		r, _ := name.ParseReference(ref, name.Insecure)
		img, err := remote.Image(r, remote.WithContext(ctx))
		if err != nil {
			losses++
			t.Errorf("LOST: %s (pushed as %s) does not pull through A: %v", p.ref, p.digest, err)
			continue
		}
		if d, _ := img.Digest(); d != p.digest {
			losses++
			t.Errorf("LOST: %s is %s through A, pushed %s", p.ref, d, p.digest)
			continue
		}
		if err := validate.Image(img); err != nil {
			losses++
			t.Errorf("LOST: %s does not validate through A: %v", p.ref, err)
		}
	}
	t.Logf("%d pushers × %d images through B in %s: %d acknowledged, %d failed (%d with 400); A ran %d collections (%d answered 409) sweeping %d manifests, %d blobs, %d claimed back by pushes; losses through A: %d",
		pushers, perPusher, pushTime.Round(time.Millisecond), len(acked), len(pushFails), pushBlobUn,
		gcRuns.Load(), gcConflicts.Load(), gcSweptM.Load(), gcSweptB.Load(), gcRestored.Load(), losses)
	if len(acked) < pushers*perPusher {
		t.Errorf("only %d of %d pushes through B were acknowledged", len(acked), pushers*perPusher)
	}
}
