package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// TestGCDuringPushes runs garbage collection in a loop, with a short grace
// period, while clients push:
//
//   - pushers (go-containerregistry's remote.Write) push images sharing a
//     pool of base layers that were uploaded earlier and never referenced:
//     the collector wants them while the clients find them with HEAD, skip
//     their upload and PUT manifests naming them; every fifth image also
//     leaves an abandoned layer behind, which the collector must sweep;
//     every eighth push is an index (children by digest, untagged, first);
//   - a baiter uploads a layer, lets it grow older than the grace period,
//     then PUTs a manifest naming it with no HEAD (remote.Tag), at the very
//     moment collections are sweeping it: the PUT must either be refused
//     (MANIFEST_BLOB_UNKNOWN) or keep the layer for good.
//
// Afterwards every image whose push succeeded must pull and validate.
func TestGCDuringPushes(t *testing.T) {
	// Not parallel: its grace period is sized for pushes on an otherwise idle machine.
	if testing.Short() {
		t.Skip("stress test")
	}
	const (
		pushers   = 8
		images    = 25 // per pusher
		poolSize  = 12
		baits     = 50
		grace     = 500 * time.Millisecond // above any single push here, even under -race
		attempts  = 5
		layerSize = 1024
	)
	start := time.Now()
	root := t.TempDir()
	store, err := storage.NewFilesystem(root, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(store, Options{DeleteEnabled: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	opts := []remote.Option{remote.WithTransport(srv.Client().Transport)}
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(host+"/"+s, name.Insecure)
		if err != nil {
			panic(err)
		}
		return r
	}

	pool := make([]v1.Layer, poolSize)
	for i := range pool {
		pool[i] = stableLayer(t, layerSize)
	}
	// Every repository gets the base layers, unreferenced; then they age
	// (their files are dated back: the collector goes by modification
	// times), so the collector wants them from its first run.
	for p := range pushers {
		for _, l := range pool {
			if err := remote.WriteLayer(ref(fmt.Sprintf("stress/p%d", p)).Context(), l, opts...); err != nil {
				t.Fatal(err)
			}
		}
	}
	ageFiles(t, root, 2*grace)

	// The collector, in a loop.
	var (
		gcRuns, swept, sweptManifests, restored int
		freed                                   int64
		gcTime                                  time.Duration
	)
	ctx, stopGC := context.WithCancel(t.Context())
	gcDone := make(chan error)
	go func() {
		for ctx.Err() == nil {
			r, err := store.GC(ctx, storage.GCOptions{Grace: grace, DeleteUntagged: true}, nil)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				gcDone <- err
				return
			}
			gcRuns++
			swept += r.BlobsSwept
			sweptManifests += r.ManifestsSwept
			freed += r.BytesFreed
			restored += r.BlobsRestored + r.ManifestsRestored
			gcTime += r.Duration
			time.Sleep(grace / 5) // the collection rate, not a wait for anything
		}
		gcDone <- nil
	}()

	type pushed struct {
		tag   string
		index bool
	}
	var (
		mu              sync.Mutex
		done            []pushed
		orphans         []v1.Hash
		retried         atomic.Int64
		failed          []string
		baitsTaken      atomic.Int64
		baitsRefused    atomic.Int64
		wg, baitersDone sync.WaitGroup
	)
	image := func(arch string, layers ...v1.Layer) v1.Image {
		base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers"}})
		if err != nil {
			panic(err)
		}
		base = mutate.ConfigMediaType(mutate.MediaType(base, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err := mutate.AppendLayers(base, layers...)
		if err != nil {
			panic(err)
		}
		return img
	}

	for p := range pushers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 42))
			repo := fmt.Sprintf("stress/p%d", p)
			randomImage := func(arch string) v1.Image {
				return image(arch, pool[rng.IntN(poolSize)], pool[rng.IntN(poolSize)], mustLayer(layerSize))
			}
			for k := range images {
				if k%5 == 4 {
					// An abandoned push: a layer nothing will reference.
					l := mustLayer(512)
					if err := remote.WriteLayer(ref(repo).Context(), l, opts...); err == nil {
						d, _ := l.Digest()
						mu.Lock()
						orphans = append(orphans, d)
						mu.Unlock()
					}
				}
				tag := fmt.Sprintf("%s:i%d", repo, k)
				isIndex := k%8 == 7
				var push func() error
				if isIndex {
					idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
						mutate.IndexAddendum{Add: randomImage("amd64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
						mutate.IndexAddendum{Add: randomImage("arm64"), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
					push = func() error { return remote.WriteIndex(ref(tag), idx, opts...) }
				} else {
					img := randomImage("amd64")
					push = func() error { return remote.Write(ref(tag), img, opts...) }
				}
				var err error
				for range attempts {
					if err = push(); err == nil {
						break
					}
					// A push slower than the grace period (from its HEAD or
					// upload to its manifest PUT) may find a layer swept:
					// MANIFEST_BLOB_UNKNOWN, and the client pushes again.
					retried.Add(1)
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s: %v", tag, err))
					mu.Unlock()
				}
				if err != nil {
					t.Errorf("push %s failed %d times: %v", tag, attempts, err)
					continue
				}
				mu.Lock()
				done = append(done, pushed{tag, isIndex})
				mu.Unlock()
			}
		})
	}

	// The baiter.
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(7, 7))
		for i := range baits {
			bait := mustLayer(layerSize)
			if err := remote.WriteLayer(ref("stress/bait").Context(), bait, opts...); err != nil {
				t.Errorf("bait %d: %v", i, err)
				return
			}
			// Until the bait is older than the grace period, give or take
			// one collection.
			delay := grace + time.Duration(rng.Int64N(int64(grace/2))) - grace/4
			baitersDone.Go(func() {
				// Real time, not synchronisation: the bait must age
				// on the clock the running collector reads.
				time.Sleep(delay)
				img := image("amd64", bait)
				// A new config, so young; then the manifest alone.
				cfg, _ := img.RawConfigFile()
				if err := remote.WriteLayer(ref("stress/bait").Context(), static.NewLayer(cfg, types.OCIConfigJSON), opts...); err != nil {
					t.Errorf("bait %d config: %v", i, err)
					return
				}
				tag := fmt.Sprintf("stress/bait:b%d", i)
				err := remote.Tag(ref(tag).(name.Tag), img, opts...)
				var terr *transport.Error
				switch {
				case err == nil:
					baitsTaken.Add(1)
					mu.Lock()
					done = append(done, pushed{tag, false})
					mu.Unlock()
				case errors.As(err, &terr) && terr.StatusCode == http.StatusBadRequest && strings.Contains(err.Error(), "MANIFEST_BLOB_UNKNOWN"):
					baitsRefused.Add(1)
				default:
					t.Errorf("bait %d manifest: %v", i, err)
				}
			})
			time.Sleep(120 * time.Millisecond) // spreads the baits over the collections
		}
		baitersDone.Wait()
	})

	wg.Wait()
	pushTime := time.Since(start)
	stopGC()
	if err := <-gcDone; err != nil {
		t.Fatalf("gc: %v", err)
	}

	// With nothing in flight any more, one more run without a grace
	// period (as if everything had aged past it) keeps only what tags
	// reach.
	final, err := store.GC(t.Context(), storage.GCOptions{DeleteUntagged: true}, nil)
	if err != nil {
		t.Fatal(err)
	}

	var losses atomic.Int64
	pulls := make(chan pushed)
	for range pushers {
		wg.Go(func() {
			for p := range pulls {
				var err error
				if p.index {
					var idx v1.ImageIndex
					if idx, err = remote.Index(ref(p.tag), opts...); err == nil {
						err = validate.Index(idx)
					}
				} else {
					var img v1.Image
					if img, err = remote.Image(ref(p.tag), opts...); err == nil {
						err = validate.Image(img)
					}
				}
				if err != nil {
					losses.Add(1)
					t.Errorf("pushed %s does not pull: %v", p.tag, err)
				}
			}
		})
	}
	for _, p := range done {
		pulls <- p
	}
	close(pulls)
	wg.Wait()

	// The abandoned layers are gone.
	kept := 0
	for _, d := range orphans {
		if ok, _ := store.HasBlob(t.Context(), digest.Digest(d.String())); ok {
			kept++
		}
	}
	if kept > 0 {
		t.Errorf("%d of %d abandoned layers survived the final collection (%s)", kept, len(orphans), final)
	}
	if swept == 0 {
		t.Error("no collection swept anything while pushes ran: the test did not race")
	}
	t.Logf("%d pushers x %d images + %d baits: %d pushed (%d push retries), baits %d taken / %d refused; "+
		"%d GCs during pushes (%s in all) swept %d blobs (%s) and %d manifests, %d claimed back from the trash; "+
		"final GC: %s; %d abandoned layers swept; %d losses; pushes took %s, test %s",
		pushers, images, baits, len(done), retried.Load(), baitsTaken.Load(), baitsRefused.Load(),
		gcRuns, gcTime.Round(time.Millisecond), swept, storage.FormatBytes(freed), sweptManifests, restored,
		final, len(orphans)-kept, losses.Load(), pushTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for i, f := range failed {
		if i == 5 {
			break
		}
		t.Logf("retried: %s", f)
	}
}

// stableLayer returns a random gzip layer whose bytes are fixed, safe to
// share between goroutines.
func stableLayer(t *testing.T, size int64) v1.Layer {
	l, err := newStableLayer(size)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustLayer(size int64) v1.Layer {
	l, err := newStableLayer(size)
	if err != nil {
		panic(err)
	}
	return l
}

func newStableLayer(size int64) (v1.Layer, error) {
	l, err := random.Layer(size, types.OCILayer)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
}

// ageFiles dates every file and directory under root back by d, as if d
// had passed since anything was written there.
func ageFiles(t *testing.T, root string, d time.Duration) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		old := fi.ModTime().Add(-d)
		return os.Chtimes(path, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}
