package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kiln/config"
	"kiln/registry"
	"kiln/storage"
)

// fakeUpstream is a hostile upstream: an anonymous registry whose /v2/
// answers 200 and whose other paths are whatever the test serves.
type fakeUpstream struct {
	srv  *httptest.Server
	host string // 127.0.0.1:port
}

func newFakeUpstream(t *testing.T, serve http.HandlerFunc) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // the ping: anonymous access
		}
		serve(w, r)
	}))
	f.host = strings.TrimPrefix(f.srv.URL, "http://")
	t.Cleanup(f.srv.Close)
	return f
}

// upstreamConfig is one upstream named name at url, with the timeouts tests use.
func upstreamConfig(name, url string) config.Upstream {
	return config.Upstream{Name: name, URL: url, TTL: -1, Timeout: 5e9} // TTL -1: every pull revalidates
}

// newKiln is kiln with the given upstreams and limits.max_blob_size.
func newKiln(t *testing.T, maxBlobSize int64, ups ...config.Upstream) (*kilnProxy, *httptest.Server) {
	t.Helper()
	store := storage.NewInMemory(storage.Options{})
	p, err := New(store, ups, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.SetMaxBlobSize(maxBlobSize)
	srv := httptest.NewServer(p.Aliases(registry.New(store, registry.Options{Upstream: p, DeleteEnabled: true})))
	t.Cleanup(srv.Close)
	return &kilnProxy{proxy: p, host: strings.TrimPrefix(srv.URL, "http://")}, srv
}
