package imagetest

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/registry"
	"kiln/storage"
)

// Registry runs a kiln registry on an in-memory store, in-process, until
// the test ends, and returns its host:port.
func Registry(t testing.TB) string {
	t.Helper()
	h := registry.New(storage.NewInMemory(storage.Options{}), registry.Options{
		DeleteEnabled: true,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
