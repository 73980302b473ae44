package bench

import (
	"context"
	"crypto/sha256"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"kiln/registry"
	"kiln/storage"
)

// TestRunAll runs every figure, tiny, against an in-process kiln: the
// benchmark code itself is exercised by go test ./...
func TestRunAll(t *testing.T) {
	srv := httptest.NewServer(registry.New(storage.NewInMemory(storage.Options{}), registry.Options{DeleteEnabled: true}))
	defer srv.Close()
	cfg := Config{
		URL:          srv.URL,
		BlobSize:     100<<10 + 7, // not a multiple of the chunk size
		ChunkSize:    32 << 10,
		Pushes:       2,
		Pulls:        3,
		Duration:     100 * time.Millisecond,
		Clients:      4,
		Tags:         30,
		TagsListRuns: 3,
		PID:          os.Getpid(),
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"push_mb_s", "chunked_mb_s", "pull_mb_s", "pull8_mb_s", "get_req_s", "get_p50_ms", "get_p99_ms",
		"put_tags_s", "put_p50_ms", "put_p50_first_ms", "put_p50_last_ms", "tags_list_ms", "rss_mib"} {
		m, ok := res.Metric(key)
		if !ok || !(m.Value > 0) {
			t.Errorf("%s: %+v, %v; want a positive figure", key, m, ok)
		}
	}
	for _, key := range []string{"pull_server_cpu_ms_gb", "client_pull_cpu_ms_gb", "pull8_server_cpu_ms_gb", "client_pull8_cpu_ms_gb"} {
		if m, ok := res.Metric(key); !ok || m.Value < 0 {
			t.Errorf("%s: %+v, %v; want a figure", key, m, ok)
		}
	}
	// 2 monolithic + 2 chunked pushes, 3 + 2 single + 3 concurrent
	// pulls, at least one GET per client, 30 PUTs.
	if min := 4 + 5 + 3 + 4 + 30; res.Verified < min {
		t.Errorf("verified %d digests, want at least %d", res.Verified, min)
	}
	var b strings.Builder
	if err := res.WriteText(&b); err != nil || !strings.Contains(b.String(), "monolithic push MB/s") {
		t.Errorf("WriteText: %v\n%s", err, b.String())
	}
}

// TestRunOnly checks that figures asked for alone set up what they need.
func TestRunOnly(t *testing.T) {
	srv := httptest.NewServer(registry.New(storage.NewInMemory(storage.Options{}), registry.Options{}))
	defer srv.Close()
	res, err := Run(context.Background(), Config{URL: srv.URL, BlobSize: 20, Pushes: 1, Pulls: 2, Tags: 5, TagsListRuns: 1, Only: []string{FigPull8, FigTags}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range res.Metrics {
		keys = append(keys, m.Key)
	}
	if strings.Join(keys, " ") != "pull8_mb_s client_pull8_cpu_ms_gb tags_list_ms" {
		t.Errorf("metrics %v, want pull8's (and its client CPU: no --pid) and tags' only", keys)
	}
	if _, err := Run(context.Background(), Config{URL: srv.URL, Only: []string{"nope"}}); err == nil {
		t.Error("unknown figure accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"256MiB": 256 << 20, "64M": 64 << 20, "1GiB": 1 << 30, "4096": 4096, "10MB": 10e6, "8 KiB": 8 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
		if FormatSize(want) == "" {
			t.Errorf("FormatSize(%d) empty", want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "x", "1.5GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// BenchmarkBlobGeneration is the client's cost of a fresh blob once the
// shared buffer exists: a tail and a cloned hash state.
func BenchmarkBlobGeneration(b *testing.B) {
	s, err := newBlobSet(1 << 20)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.next(); err != nil {
			b.Fatal(err)
		}
	}
}

// procCPU reads a process's CPU time as the kernel counts it.
func TestProcCPU(t *testing.T) {
	before, ok := procCPU(os.Getpid())
	if !ok {
		t.Fatal("no CPU time for this process")
	}
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for range 200 { // some CPU for the kernel to count
		h.Write(buf)
	}
	after, ok := procCPU(os.Getpid())
	if !ok || after <= before {
		t.Errorf("CPU time %v then %v, want it to grow", before, after)
	}
	if _, ok := procCPU(-1); ok {
		t.Error("a CPU time for no process")
	}
}
