package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
// of the direct pull's, all measured in the same run. Each iteration is a
// fresh kiln on a filesystem store (b.TempDir, on the real disk: the
// commit's fsync is part of the cost). The client fetches the layers in
// parallel, as skopeo and docker do.
//
//	go test -run '^$' -bench ColdPull -benchtime 5x ./proxy/
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

	var direct, cold, warm time.Duration
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

		direct += timePull(b, upHost+"/bench/app:v1")
		cold += timePull(b, kHost+"/up/bench/app:v1")
		warm += timePull(b, kHost+"/up/bench/app:v1")

		b.StopTimer()
		k.Close()
		p.Wait()
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(float64(direct.Milliseconds())/n, "direct-ms/op")
	b.ReportMetric(float64(cold.Milliseconds())/n, "cold-ms/op")
	b.ReportMetric(float64(warm.Milliseconds())/n, "warm-ms/op")
	b.ReportMetric(float64(cold)/float64(direct), "cold/direct")
	b.ReportMetric(float64(warm)/float64(direct), "warm/direct")
}

func timePull(b *testing.B, ref string) time.Duration {
	b.Helper()
	start := time.Now()
	if err := pullImage(ref); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
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
