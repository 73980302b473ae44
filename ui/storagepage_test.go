package ui

import (
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

	opts.Usage = func() (int, int64, time.Time, error) { return 0, 0, time.Time{}, errors.New("store down") }
	_, body = get(t, New(opts), "/ui/storage")
	mustContain(t, body, "could not count")
	mustNotContain(t, body, "store down") // details go to the log
}
