package buildhook

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// BenchmarkBuildOnPush measures what a user waits for: from the answer to
// a base's manifest PUT until the derived tag points at the rebuilt image
// (build, provenance, push, tag move), for the in-process strategies, on
// an in-memory store: one rule on the base (native, rebase), and both
// rules on it at once (both: ns/op until both moved, and the median of
// each, native-ms and rebase-ms). BenchmarkRebuildLatency in bench/
// measures the same from outside the kiln process, on a filesystem store.
//
//	go test -run '^$' -bench BuildOnPush -benchtime 40x ./buildhook/
func BenchmarkBuildOnPush(b *testing.B) {
	native := benchRule{name: "native", builder: "native", strategy: "build"}
	rebase := benchRule{name: "rebase", builder: "native", strategy: "rebase"}
	for _, tc := range []struct {
		name  string
		rules []benchRule
	}{
		{"native", []benchRule{native}},
		{"rebase", []benchRule{rebase}},
		{"both", []benchRule{native, rebase}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchBuildOnPush(b, tc.rules) })
	}
}

// benchRule is a rule on base:1 that tags <name>:v1.
type benchRule struct{ name, builder, strategy string }

func benchBuildOnPush(b *testing.B, rules []benchRule) {
	moved := make(chan storage.TagMove, 16)
	moves := new(TagMoves)
	derived := map[string]int{}
	for i, r := range rules {
		derived[r.name] = i
	}
	store := storage.NewInMemory(storage.Options{OnTagMoved: func(m storage.TagMove) {
		moves.TagMoved(m)
		if _, ok := derived[m.Repo]; ok && m.Tag == "v1" {
			moved <- m
		}
	}})
	srv := httptest.NewServer(registry.New(store, registry.Options{DeleteEnabled: true}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("ARG REGISTRY\nFROM ${REGISTRY}/base:1\nENV APP=1\nCOPY app.py /app/app.py\nCMD [\"/app/app.py\"]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.py"), []byte("print('hi')\n"), 0o644)
	var builds []config.Build
	for _, r := range rules {
		builds = append(builds, config.Build{Name: r.name, Context: dir, Dockerfile: "Dockerfile", Tags: []string{r.name + ":v1"},
			Args: map[string]string{"REGISTRY": host}, Builder: r.builder, Strategy: r.strategy})
	}
	loaded, err := LoadRules(builds, dir, []string{host}, nil)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := NewService(ServiceOptions{Store: store, TagMoves: moves, Rules: loaded, Registry: host, Hosts: []string{host}, Concurrency: 2}) // kiln's default
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); svc.Wait() }()
	svc.Start(ctx)

	// A 1 MB base in three layers, as in the measurements.
	base, err := random.Image(350_000, 3)
	if err != nil {
		b.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/base:1", name.Insecure)
	push := func() {
		layer, _ := random.Layer(1024, "application/vnd.docker.image.rootfs.diff.tar.gzip")
		img, err := mutate.AppendLayers(base, layer)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			b.Fatal(err)
		}
	}
	// wait returns how long after put each derived tag moved.
	wait := func(put time.Time) []time.Duration {
		took := make([]time.Duration, len(rules))
		for range rules {
			select {
			case m := <-moved:
				took[derived[m.Repo]] = time.Since(put)
			case <-time.After(time.Minute):
				b.Fatal("derived tag did not move")
			}
		}
		return took
	}
	push() // the first builds: rebase has nothing to rebase yet
	wait(time.Now())
	each := make([][]time.Duration, len(rules))
	for b.Loop() {
		b.StopTimer()
		push()
		put := time.Now()
		b.StartTimer()
		for i, d := range wait(put) {
			each[i] = append(each[i], d)
		}
	}
	if len(rules) > 1 {
		for i, r := range rules {
			slices.Sort(each[i])
			b.ReportMetric(float64(each[i][len(each[i])/2])/float64(time.Millisecond), r.name+"-ms")
		}
	}
}
