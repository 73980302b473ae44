package ui

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"kiln/storage"
)

func TestStoragePage(t *testing.T) {
	t.Parallel()
	opts := Options{Catalog: storage.NewInMemory(storage.Options{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.Usage = func() (int, int64, time.Time, error) { return 3, 1536, time.Now().Add(-time.Minute), nil }
	code, body := get(t, New(opts), "/ui/storage")
	if code != 200 {
		t.Fatalf("GET storage: %d", code)
	}
	mustContain(t, body, "<strong>1.5 KiB</strong> in <strong>3</strong> blobs", "counted 1m ago", `data-gc="dry"`, `data-gc="run"`)

	opts.Cache = func(context.Context) (CacheUsage, error) {
		return CacheUsage{Images: 7, Bytes: 3 << 20, Shared: 1 << 20, Budget: 4 << 20, Measured: time.Now().Add(-2 * time.Minute)}, nil
	}
	_, body = get(t, New(opts), "/ui/storage")
	mustContain(t, body, "Pull-through cache", "<strong>3.0 MiB</strong> in <strong>7</strong> cached images of a <strong>4.0 MiB</strong> budget (75%)",
		"1.0 MiB shared", "measured 2m ago", `<progress class="meter" value="75" max="100">`)

	opts.Cache = func(context.Context) (CacheUsage, error) { return CacheUsage{}, errors.New("walk failed") }
	opts.Usage = func() (int, int64, time.Time, error) { return 0, 0, time.Time{}, errors.New("store down") }
	_, body = get(t, New(opts), "/ui/storage")
	mustContain(t, body, "could not count", "could not measure the cache")
	mustNotContain(t, body, "store down", "walk failed") // details go to the log
}
