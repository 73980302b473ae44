package proxy

import (
	"fmt"
	"net/http"
	"testing"
)

// Every distinct upstream repository name costs state only up to a bound.
func TestPerNameUpstreamStateBounded(t *testing.T) {
	t.Parallel()
	up := newFakeUpstream(t, http.NotFound)
	k, _ := newKiln(t, 0, upstreamConfig("up.example", up.srv.URL))
	u := k.proxy.upstreams["up.example"]
	const bound = 8
	u.transports.max = bound
	for i := range 5 * bound {
		resp, err := http.Get(fmt.Sprintf("http://%s/v2/up.example/team/app%d/manifests/v1", k.host, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("pull of a name the upstream lacks: %s", resp.Status)
		}
	}
	if n := u.transports.len(); n > bound {
		t.Errorf("%d names pulled keep %d transports, want at most %d", 5*bound, n, bound)
	}
}
