package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// ---------------------------------------------------------------- checks

type crashState struct {
	clients                          []*crashClient
	resumedSessions, unknownSessions int
	losses                           int
}

type crashTotals struct{ mono, chunked, resumed, manifests, deletes, cut int }

func (s *crashState) totals() crashTotals {
	var t crashTotals
	for _, c := range s.clients {
		t.mono += len(c.mono)
		t.chunked += len(c.chunked)
		t.resumed += len(c.resumed)
		t.manifests += c.putsAcked
		t.deletes += len(c.deleted)
		t.cut += c.cut
	}
	return t
}

func (s *crashState) pendingSessions() []*crashSession {
	var out []*crashSession
	for _, c := range s.clients {
		out = append(out, c.sessions...)
	}
	return out
}

func (s *crashState) lost(t *testing.T, format string, args ...any) {
	t.Helper()
	s.losses++
	t.Errorf("LOST: "+format, args...)
}

// verify checks, on the restarted kiln, everything acknowledged so far.
func (s *crashState) verify(t *testing.T, h *crashHTTP, round int) {
	t.Helper()
	get := func(url string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		resp, b, err := h.do(http.MethodGet, url, hdr, nil)
		if err != nil {
			t.Fatalf("GET %s after restart: %v", url, err)
		}
		return resp, b
	}
	checkBlob := func(b crashBlob, what string) {
		t.Helper()
		resp, got := get("/v2/"+b.repo+"/blobs/"+b.digest, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, b.content) {
			s.lost(t, "%s blob %s/%s: %s, %d bytes (want %d), hashes to %s", what, b.repo, b.digest, resp.Status, len(got), len(b.content), sha256Digest(got))
		}
	}
	accept := map[string]string{"Accept": acceptManifests}
	checked := 0
	for _, c := range s.clients {
		for _, b := range c.mono {
			checkBlob(b, "monolithic")
		}
		for _, b := range c.chunked {
			checkBlob(b, "chunked")
		}
		for _, b := range c.resumed {
			checkBlob(b, "resumed")
		}
		for _, m := range c.manifests {
			for _, ref := range []string{m.tag, m.digest} {
				resp, body := get("/v2/"+m.repo+"/manifests/"+ref, accept)
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, m.body) {
					s.lost(t, "manifest %s:%s: %s", m.repo, ref, resp.Status)
				}
			}
			for _, b := range m.blobs {
				checkBlob(b, "manifest's")
			}
		}
		for _, m := range c.deleted {
			for _, ref := range []string{m.tag, m.digest} {
				if resp, _ := get("/v2/"+m.repo+"/manifests/"+ref, accept); resp.StatusCode != http.StatusNotFound {
					s.lost(t, "deleted manifest %s:%s came back: %s", m.repo, ref, resp.Status)
				}
			}
		}
		checked += len(c.mono) + len(c.chunked) + len(c.resumed) + len(c.manifests) + len(c.deleted)

		// Nothing half-written is visible: every tag listed resolves to a
		// manifest whose blobs are whole, acknowledged or not.
		resp, body := get("/v2/"+c.repo+"/tags/list?n=10000", nil)
		if resp.StatusCode == http.StatusOK {
			var tl struct{ Tags []string }
			if err := json.Unmarshal(body, &tl); err != nil {
				t.Fatalf("tags/list: %v", err)
			}
			for _, tag := range tl.Tags {
				resp, mb := get("/v2/"+c.repo+"/manifests/"+tag, accept)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != sha256Digest(mb) {
					t.Errorf("listed tag %s:%s: %s", c.repo, tag, resp.Status)
					continue
				}
				var md manifestDoc
				if err := json.Unmarshal(mb, &md); err != nil || md.Config == nil {
					t.Errorf("listed tag %s:%s: manifest %v", c.repo, tag, err)
					continue
				}
				for _, d := range append([]descriptor{*md.Config}, md.Layers...) {
					resp, b := get("/v2/"+c.repo+"/blobs/"+d.Digest, nil)
					if resp.StatusCode != http.StatusOK || sha256Digest(b) != d.Digest || int64(len(b)) != d.Size {
						t.Errorf("listed tag %s:%s: blob %s: %s, %d bytes", c.repo, tag, d.Digest, resp.Status, len(b))
					}
				}
			}
		} else if resp.StatusCode != http.StatusNotFound {
			t.Errorf("tags/list %s: %s", c.repo, resp.Status)
		}

		// Interrupted sessions resume from where they stand, or are unknown.
		for _, ss := range c.sessions {
			s.checkSession(t, h, c, ss)
		}
		c.sessions = nil
	}
	t.Logf("round %d: after restart %d acknowledged operations verified; sessions so far: %d resumed, %d unknown; losses so far: %d",
		round, checked, s.resumedSessions, s.unknownSessions, s.losses)
}

func (s *crashState) checkSession(t *testing.T, h *crashHTTP, c *crashClient, ss *crashSession) {
	t.Helper()
	resp, body, err := h.do(http.MethodGet, ss.location, nil, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", ss.location, err)
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		if !strings.Contains(string(body), "BLOB_UPLOAD_UNKNOWN") {
			t.Errorf("session %s: 404 without BLOB_UPLOAD_UNKNOWN: %s", ss.location, body)
		}
		// Only the final PUT may end a session; one whose POST was
		// answered and that never saw a PUT must still be there.
		if !ss.putSent {
			s.lost(t, "session %s: unknown after a crash, though no PUT was sent (%d bytes acknowledged)", ss.location, ss.acked)
		}
		s.unknownSessions++
		return
	case http.StatusNoContent:
	default:
		t.Errorf("session %s: status %s: %s", ss.location, resp.Status, tail(string(body), 5))
		return
	}
	n := rangeEnd(resp.Header.Get("Range"))
	if n < ss.acked || n > int64(len(ss.content)) {
		s.lost(t, "session %s: Range %q, but %d bytes were acknowledged (of %d)", ss.location, resp.Header.Get("Range"), ss.acked, len(ss.content))
		return
	}
	loc := resp.Header.Get("Location")
	if n < int64(len(ss.content)) {
		resp, body, err = h.do(http.MethodPatch, loc, map[string]string{
			"Content-Type":  "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", n, len(ss.content)-1),
		}, ss.content[n:])
		if err != nil {
			t.Fatalf("PATCH %s: %v", loc, err)
		}
		if resp.StatusCode != http.StatusAccepted {
			s.lost(t, "resuming session %s at %d: %s: %s", loc, n, resp.Status, tail(string(body), 5))
			return
		}
		loc = resp.Header.Get("Location")
	}
	resp, body, err = h.do(http.MethodPut, withQuery(loc, "digest="+ss.digest), nil, nil)
	if err != nil {
		t.Fatalf("PUT %s: %v", loc, err)
	}
	if resp.StatusCode != http.StatusCreated {
		s.lost(t, "finishing resumed session %s: %s: %s", loc, resp.Status, tail(string(body), 5))
		return
	}
	b := crashBlob{ss.repo, ss.digest, ss.content}
	c.resumed = append(c.resumed, b)
	s.resumedSessions++
	resp, got, err := h.do(http.MethodGet, "/v2/"+b.repo+"/blobs/"+b.digest, nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, b.content) {
		s.lost(t, "resumed blob %s: %v", b.digest, err)
	}
}
