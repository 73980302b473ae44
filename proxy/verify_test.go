package proxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
)

// getBlob GETs repo's blob d through kiln and reads all it can; ok is
// whether the client got a complete 200 response.
func getBlob(t *testing.T, k *kilnProxy, repo string, d digest.Digest) (status int, body []byte, complete bool) {
	t.Helper()
	resp, err := http.Get("http://" + k.host + "/v2/" + repo + "/blobs/" + string(d))
	if err != nil {
		return 0, nil, false
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err == nil && resp.StatusCode == http.StatusOK
}

// An upstream blob whose bytes do not match its digest never reaches a
// client as a complete 200, is not cached, and is counted: empty, inside
// one chunk, and spanning several (the client has had most of it when the
// mismatch shows).
func TestUpstreamBlobWithWrongBytesIsNeverServedWhole(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 100, 3*teeChunk + 100} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			d := digest.FromBytes(bytes.Repeat([]byte("a"), max(size, 1)))
			evil := bytes.Repeat([]byte("b"), size) // none at all, for size 0
			up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(evil)))
				w.Write(evil)
			})
			k, _ := newKiln(t, 0, upstreamConfig("up.example", up.srv.URL))
			status, body, complete := getBlob(t, k, "up.example/team/app", d)
			if complete {
				t.Errorf("client got a complete %d response of %d bytes whose digest is not %s", status, len(body), d)
			}
			if size > 0 && bytes.Equal(body, evil) {
				t.Errorf("client got every wrong byte")
			}
			if size <= teeChunk && (status != http.StatusBadGateway || !strings.Contains(string(body), "DIGEST_INVALID")) {
				// Held back whole: the client gets a proper error.
				t.Errorf("blob of one chunk with the wrong bytes: %d %q, want 502 DIGEST_INVALID", status, body)
			}
			if ok, _ := k.proxy.store.HasBlob(context.Background(), d); ok {
				t.Errorf("blob with the wrong bytes was cached")
			}
			if n := k.proxy.DigestMismatches(); n != 1 {
				t.Errorf("digest mismatches counted: %d, want 1", n)
			}
		})
	}
}

// secretServer is an internal service on another loopback port.
func secretServer(t *testing.T, secret []byte) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(secret)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// An upstream redirect is followed only to a host listed for it.
func TestUpstreamRedirectOnlyToListedHosts(t *testing.T) {
	t.Parallel()
	secret := []byte("internal service: the keys to everything")
	d := digest.FromBytes(secret) // what the client asks for: a digest check cannot help
	internal, hits := secretServer(t, secret)
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, internal.URL+"/secret", http.StatusTemporaryRedirect)
	})

	k, _ := newKiln(t, 0, upstreamConfig("up.example", up.srv.URL))
	status, body, _ := getBlob(t, k, "up.example/team/app", d)
	if status == http.StatusOK || bytes.Contains(body, secret) {
		t.Errorf("redirect to an unlisted host was followed: %d %q", status, body)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("unlisted redirect target got %d requests", n)
	}
	if status != http.StatusBadGateway || !strings.Contains(string(body), "redirect_hosts") {
		t.Errorf("refused redirect: %d %q, want a 502 naming redirect_hosts", status, body)
	}

	listed := upstreamConfig("up.example", up.srv.URL)
	listed.RedirectHosts = []string{strings.TrimPrefix(internal.URL, "http://")}
	k, _ = newKiln(t, 0, listed)
	status, body, complete := getBlob(t, k, "up.example/team/app", d)
	if !complete || !bytes.Equal(body, secret) {
		t.Errorf("redirect to a listed host: %d %q", status, body)
	}
}

// realmUpstream is an upstream whose token realm is on another port.
func realmUpstream(t *testing.T, manifest []byte, mediaType string) (up *httptest.Server, realmHost string, sawPassword *atomic.Int64) {
	t.Helper()
	sawPassword = new(atomic.Int64)
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); ok && pass == "upstream-password" {
			sawPassword.Add(1)
		}
		w.Write([]byte(`{"token":"t0k3n"}`))
	}))
	t.Cleanup(realm.Close)
	// By name: ggcr itself refuses realms that are private IP literals.
	realmURL := strings.Replace(realm.URL, "127.0.0.1", "localhost", 1)
	up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0k3n" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realmURL+`/token",service="up"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", mediaType)
		w.Write(manifest)
	}))
	t.Cleanup(up.Close)
	return up, strings.TrimPrefix(realmURL, "http://"), sawPassword
}

// The configured password goes to a token realm only when it is the
// upstream's own host or one listed for it.
func TestTokenRealmOnOtherHostGetsNoPassword(t *testing.T) {
	t.Parallel()
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	up, realmHost, sawPassword := realmUpstream(t, manifest, "application/vnd.oci.image.manifest.v1+json")
	cfg := upstreamConfig("up.example", up.URL)
	cfg.Username, cfg.Password = "kiln", "upstream-password"

	k, _ := newKiln(t, 0, cfg)
	resp, err := http.Get("http://" + k.host + "/v2/up.example/team/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := sawPassword.Load(); n != 0 {
		t.Errorf("a token realm on another host got the upstream password %d times", n)
	}
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "redirect_hosts") {
		t.Errorf("refused realm: %s %q, want a 502 naming redirect_hosts", resp.Status, body)
	}
	if k.proxy.upstreams["up.example"].health.recentlyDown() {
		t.Errorf("a refused realm counted as the upstream being down")
	}

	cfg.RedirectHosts = []string{realmHost}
	k, _ = newKiln(t, 0, cfg)
	resp, err = http.Get("http://" + k.host + "/v2/up.example/team/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sawPassword.Load() == 0 {
		t.Errorf("listed realm: %s, password sent %d times", resp.Status, sawPassword.Load())
	}
}

// endlessUpstream writes blob bytes until kiln stops reading, or until
// giveUp bytes, and sends how many it wrote on the channel.
func endlessUpstream(t *testing.T, giveUp int64) (*fakeUpstream, chan int64) {
	t.Helper()
	wrote := make(chan int64, 1)
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		buf := bytes.Repeat([]byte("x"), 32<<10)
		var n int64
		for n < giveUp {
			m, err := w.Write(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		wrote <- n
	})
	return up, wrote
}

// An upstream fetch no client waits for any more stops after a bounded
// amount of data.
func TestFetchStopsAfterClientLeft(t *testing.T) {
	t.Parallel()
	const giveUp = 64 << 20 // far past the bound and every buffer on the way
	up, wrote := endlessUpstream(t, giveUp)
	k, _ := newKiln(t, 0, upstreamConfig("up.example", up.srv.URL))
	k.proxy.orphanLimit = 1 << 20
	d := digest.FromString("endless")
	resp, err := http.Get("http://" + k.host + "/v2/up.example/team/app/blobs/" + string(d))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 128<<10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the client leaves
	n := <-wrote
	t.Logf("the upstream wrote %.1f MiB", float64(n)/(1<<20))
	if n >= giveUp {
		t.Errorf("the upstream sent %d MiB and kiln still read on after its client left", n>>20)
	}
}

// limits.max_blob_size applies to upstream blobs: a larger declared size is
// refused, a larger actual size cut.
func TestMaxBlobSizeAppliesToUpstreamBlobs(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	t.Run("declared", func(t *testing.T) {
		big := bytes.Repeat([]byte("z"), 2*limit)
		d := digest.FromBytes(big)
		up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		})
		k, _ := newKiln(t, limit, upstreamConfig("up.example", up.srv.URL))
		status, body, _ := getBlob(t, k, "up.example/team/app", d)
		if status == http.StatusOK || !strings.Contains(string(body), "max_blob_size") {
			t.Errorf("upstream blob of %d bytes with limit %d: %d %.200q", len(big), limit, status, body)
		}
	})
	t.Run("actual", func(t *testing.T) {
		const giveUp = 64 << 20
		up, wrote := endlessUpstream(t, giveUp)
		k, _ := newKiln(t, limit, upstreamConfig("up.example", up.srv.URL))
		_, body, complete := getBlob(t, k, "up.example/team/app", digest.FromString("endless"))
		if complete || len(body) > limit {
			t.Errorf("client got %d bytes (complete: %v) with limit %d", len(body), complete, limit)
		}
		n := <-wrote
		t.Logf("the upstream wrote %.1f MiB", float64(n)/(1<<20))
		if n >= giveUp {
			t.Errorf("kiln read %d MiB of an upstream blob with limit %d", n>>20, limit)
		}
	})
}
