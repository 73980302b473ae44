package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ---------------------------------------------------------------- clients

type crashHTTP struct {
	base     string
	client   *http.Client
	answered func() // if set, called after each complete answer
}

// newCrashHTTP returns a client with its own connections, so none survives
// from a killed kiln into the next one.
func newCrashHTTP(base string) *crashHTTP {
	return &crashHTTP{base: base, client: &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}}
}

func (h *crashHTTP) do(method, url string, hdr map[string]string, body []byte) (*http.Response, []byte, error) {
	if strings.HasPrefix(url, "/") {
		url = h.base + url
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if h.answered != nil {
		h.answered()
	}
	return resp, b, nil
}

type crashBlob struct {
	repo    string
	digest  string
	content []byte
}

type crashManifest struct {
	repo, tag, digest string
	body              []byte
	blobs             []crashBlob
}

// crashSession is a chunked upload cut off by the crash.
type crashSession struct {
	repo, location string
	content        []byte
	digest         string
	acked          int64 // bytes the last 202 acknowledged
	putSent        bool  // the final PUT was under way
}

type crashClient struct {
	repo string
	rng  *rand.Rand
	seq  int

	mono, chunked, resumed []crashBlob
	manifests              []*crashManifest // acknowledged, not deleted
	deleted                []*crashManifest // acknowledged deletes
	putsAcked              int              // acknowledged manifest PUTs
	sessions               []*crashSession  // cut off, not yet checked
	cut                    int              // requests cut off by the crash
	started                func()           // called on each answered request
}

func (c *crashClient) content(min, max int) ([]byte, string) {
	b := make([]byte, min+c.rng.IntN(max-min))
	for i := range b {
		b[i] = byte(c.rng.UintN(256))
	}
	return b, sha256Digest(b)
}

// run pushes until a request fails (kiln was killed).
func (c *crashClient) run(t *testing.T, h *crashHTTP, round int) {
	h.answered = c.started
	for {
		c.seq++
		// Every other iteration deletes a manifest pushed before (in
		// this round or an earlier one), so deletes are cut off too.
		if len(c.manifests) > 0 && c.rng.IntN(2) == 0 {
			if !c.deleteManifest(t, h) {
				return
			}
		}
		cfg, ok := c.pushMonolithic(t, h)
		if !ok {
			return
		}
		layer, ok := c.pushChunked(t, h)
		if !ok {
			return
		}
		if !c.putManifest(t, h, round, cfg, layer) {
			return
		}
	}
}

func (c *crashClient) unexpected(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Errorf("%s %s: unexpected %s: %s", c.repo, what, resp.Status, tail(string(body), 5))
}

func (c *crashClient) pushMonolithic(t *testing.T, h *crashHTTP) (crashBlob, bool) {
	b, d := c.content(1<<10, 32<<10)
	resp, body, err := h.do(http.MethodPost, "/v2/"+c.repo+"/blobs/uploads/?digest="+d, map[string]string{"Content-Type": "application/octet-stream"}, b)
	if err != nil {
		c.cut++
		return crashBlob{}, false
	}
	if resp.StatusCode != http.StatusCreated {
		c.unexpected(t, "monolithic POST", resp, body)
		return crashBlob{}, false
	}
	blob := crashBlob{c.repo, d, b}
	c.mono = append(c.mono, blob)
	return blob, true
}

func (c *crashClient) pushChunked(t *testing.T, h *crashHTTP) (crashBlob, bool) {
	b, d := c.content(48<<10, 256<<10)
	resp, body, err := h.do(http.MethodPost, "/v2/"+c.repo+"/blobs/uploads/", nil, nil)
	if err != nil {
		c.cut++
		return crashBlob{}, false
	}
	if resp.StatusCode != http.StatusAccepted {
		c.unexpected(t, "POST", resp, body)
		return crashBlob{}, false
	}
	s := &crashSession{repo: c.repo, location: resp.Header.Get("Location"), content: b, digest: d}
	chunks := 3 + c.rng.IntN(3)
	size := int64(len(b)) / int64(chunks)
	for i := range chunks - 1 {
		from, to := int64(i)*size, int64(i+1)*size
		resp, body, err := h.do(http.MethodPatch, s.location, map[string]string{
			"Content-Type":  "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", from, to-1),
		}, b[from:to])
		if err != nil {
			c.cut++
			c.sessions = append(c.sessions, s)
			return crashBlob{}, false
		}
		if resp.StatusCode != http.StatusAccepted {
			c.unexpected(t, "PATCH", resp, body)
			return crashBlob{}, false
		}
		s.location = resp.Header.Get("Location")
		if s.acked = rangeEnd(resp.Header.Get("Range")); s.acked != to {
			t.Errorf("%s PATCH %d-%d: Range %q", c.repo, from, to-1, resp.Header.Get("Range"))
		}
	}
	last := int64(chunks-1) * size
	s.putSent = true
	resp, body, err = h.do(http.MethodPut, withQuery(s.location, "digest="+d), map[string]string{
		"Content-Type":  "application/octet-stream",
		"Content-Range": fmt.Sprintf("%d-%d", last, len(b)-1),
	}, b[last:])
	if err != nil {
		c.cut++
		c.sessions = append(c.sessions, s)
		return crashBlob{}, false
	}
	if resp.StatusCode != http.StatusCreated {
		c.unexpected(t, "PUT", resp, body)
		return crashBlob{}, false
	}
	blob := crashBlob{c.repo, d, b}
	c.chunked = append(c.chunked, blob)
	return blob, true
}

func (c *crashClient) putManifest(t *testing.T, h *crashHTTP, round int, cfg, layer crashBlob) bool {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.digest, "size": len(cfg.content)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.digest, "size": len(layer.content)}},
		"annotations":   map[string]string{"seq": strconv.Itoa(c.seq), "repo": c.repo},
	}
	body, _ := json.Marshal(m)
	tag := fmt.Sprintf("r%d-%d", round, c.seq)
	resp, rb, err := h.do(http.MethodPut, "/v2/"+c.repo+"/manifests/"+tag, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body)
	if err != nil {
		c.cut++
		return false
	}
	if resp.StatusCode != http.StatusCreated {
		c.unexpected(t, "manifest PUT", resp, rb)
		return false
	}
	d := sha256Digest(body)
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		t.Errorf("%s manifest PUT: Docker-Content-Digest %s, want %s", c.repo, got, d)
	}
	c.putsAcked++
	c.manifests = append(c.manifests, &crashManifest{repo: c.repo, tag: tag, digest: d, body: body, blobs: []crashBlob{cfg, layer}})
	return true
}

func (c *crashClient) deleteManifest(t *testing.T, h *crashHTTP) bool {
	i := c.rng.IntN(len(c.manifests))
	m := c.manifests[i]
	// Until answered, the delete may or may not happen: not checked.
	c.manifests = append(c.manifests[:i], c.manifests[i+1:]...)
	resp, body, err := h.do(http.MethodDelete, "/v2/"+c.repo+"/manifests/"+m.digest, nil, nil)
	if err != nil {
		c.cut++
		return false
	}
	if resp.StatusCode != http.StatusAccepted {
		c.unexpected(t, "manifest DELETE", resp, body)
		return false
	}
	c.deleted = append(c.deleted, m)
	return true
}

func withQuery(loc, q string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + q
	}
	return loc + "?" + q
}

// rangeEnd returns the size a Range header "0-N" stands for.
func rangeEnd(r string) int64 {
	_, end, ok := strings.Cut(r, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(end, 10, 64)
	if err != nil {
		return -1
	}
	if n == 0 {
		return 0 // "0-0" is also an empty session
	}
	return n + 1
}
