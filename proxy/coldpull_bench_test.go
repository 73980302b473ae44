package proxy

import (
	"cmp"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// BenchmarkColdPull pulls a 100 MB, 5-layer image straight from an
// in-process upstream, then through a kiln that never saw it (cold), then
// through the same kiln again (warm), and reports kiln's times as ratios
// of the direct pull's (medians over the iterations), all measured in the
// same run. Each iteration is a fresh kiln on a filesystem store
// (b.TempDir, on the real disk: the commit's fsync is part of the cost).
// The client fetches the layers in parallel, as skopeo and docker do.
// It also reports the process's CPU time per pull (upstream, kiln and
// client share it): the cold pull's excess over the direct one is what
// the relay costs, a figure this shared machine's load disturbs less than
// wall times.
//
//	go test -run '^$' -bench ColdPull -benchtime 7x ./proxy/
func BenchmarkColdPull(b *testing.B) {
	const layers, layerSize = 5, 20 << 20
	upStore, err := storage.NewFilesystem(b.TempDir(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	up := httptest.NewServer(registry.New(upStore, registry.Options{}))
	defer up.Close()
	upHost := strings.TrimPrefix(up.URL, "http://")
	img, err := random.Image(layerSize, layers)
	if err != nil {
		b.Fatal(err)
	}
	ref, _ := name.ParseReference(upHost+"/bench/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	if err := pullImage(upHost + "/bench/app:v1"); err != nil { // the upstream's page cache is warm
		b.Fatal(err)
	}

	// Per iteration, so that the reported ratios are medians: other
	// processes on the machine disturb single pulls, not the median.
	var direct, cold, warm []time.Duration
	var directCPU, coldCPU, warmCPU []time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		store, err := storage.NewFilesystem(b.TempDir(), storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		p, err := New(store, []config.Upstream{{Name: "up", URL: up.URL, TTL: time.Hour, Timeout: 30 * time.Second}}, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		k := httptest.NewServer(p.Aliases(registry.New(store, registry.Options{Upstream: p})))
		kHost := strings.TrimPrefix(k.URL, "http://")
		b.StartTimer()

		wall, cpu := timePull(b, upHost+"/bench/app:v1")
		direct, directCPU = append(direct, wall), append(directCPU, cpu)
		wall, cpu = timePull(b, kHost+"/up/bench/app:v1")
		cold, coldCPU = append(cold, wall), append(coldCPU, cpu)
		wall, cpu = timePull(b, kHost+"/up/bench/app:v1")
		warm, warmCPU = append(warm, wall), append(warmCPU, cpu)

		b.StopTimer()
		k.Close()
		p.Wait()
		b.StartTimer()
	}
	coldRatio, warmRatio := make([]float64, len(direct)), make([]float64, len(direct))
	for i := range direct {
		coldRatio[i] = float64(cold[i]) / float64(direct[i])
		warmRatio[i] = float64(warm[i]) / float64(direct[i])
	}
	ms := func(ds []time.Duration) float64 { return float64(median(ds)) / float64(time.Millisecond) }
	b.ReportMetric(ms(direct), "direct-ms")
	b.ReportMetric(ms(cold), "cold-ms")
	b.ReportMetric(ms(warm), "warm-ms")
	b.ReportMetric(ms(directCPU), "direct-cpu-ms")
	b.ReportMetric(ms(coldCPU), "cold-cpu-ms")
	b.ReportMetric(ms(warmCPU), "warm-cpu-ms")
	b.ReportMetric(median(coldRatio), "cold/direct")
	b.ReportMetric(median(warmRatio), "warm/direct")
}

// median returns the middle of xs (sorting them).
func median[T cmp.Ordered](xs []T) T {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// timePull pulls ref and returns the wall time it took and the CPU time
// the process spent meanwhile.
func timePull(b *testing.B, ref string) (wall, cpu time.Duration) {
	b.Helper()
	cpu0, start := processCPU(b), time.Now()
	if err := pullImage(ref); err != nil {
		b.Fatal(err)
	}
	return time.Since(start), processCPU(b) - cpu0
}

// processCPU is the user and system time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pullImage fetches ref's manifest, config and layers, the layers in
// parallel, each verified against its digest.
func pullImage(s string) error {
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(ref, remote.WithTransport(http.DefaultTransport))
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
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Go(func() { errs[i] = readLayer(l) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func readLayer(l v1.Layer) error {
	rc, err := l.Compressed() // verifies the digest at EOF
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}
