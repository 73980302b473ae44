package build

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// One build's registry calls to kiln on plain HTTP ping it once per
// repository, and never try https first: each such try cost a connection
// and a failed handshake.
func TestRemoteOptionsPingOncePlainHTTP(t *testing.T) {
	var pings, conns atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			pings.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(host+"/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	// Its own transport, so that no earlier test's connection is reused.
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	pings.Store(0)
	conns.Store(0)

	job := &Job{Registry: host}
	opts := RemoteOptions(context.Background(), job, nil, nil)
	for range 3 {
		if _, err := remote.Get(ref, opts...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := remote.Head(ref, opts...); err != nil {
		t.Fatal(err)
	}
	if got := pings.Load(); got != 1 {
		t.Errorf("%d pings for four reads of one repository, want 1", got)
	}
	if got := conns.Load(); got > 1 {
		t.Errorf("%d connections for one build's reads, want 1 (https tried first?)", got)
	}
}

// Where kiln serves HTTPS (Self.Transport trusts it), https is used.
func TestRemoteOptionsHTTPSSelf(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewTLSServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(host+"/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	job := &Job{Registry: host, Self: SelfAccess{Transport: srv.Client().Transport}}
	if err := remote.Write(ref, img, RemoteOptions(context.Background(), job, nil, nil)...); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(ref, RemoteOptions(context.Background(), job, nil, nil)...); err != nil {
		t.Fatal(err)
	}
}
