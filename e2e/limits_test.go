package e2e

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// TestLimits runs kiln with small limits from its config file: a blob past
// limits.max_blob_size is refused and not kept, an upload that stops
// sending is cut after http.stall_timeout without holding the server, and
// an upload past limits.max_concurrent_uploads gets 429 until a slot frees.
func TestLimits(t *testing.T) {
	needSetup(t)
	bin, err := buildKiln()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "kiln.yml")
	cfg := `version: 1
http:
  stall_timeout: 1s
limits:
  max_blob_size: 1000
  max_concurrent_uploads: 1
storage:
  driver: inmemory
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := launchKiln(bin, "limits", dir, "kiln.log", nil, "", "--config", cfgPath)
	if err != nil {
		if srv != nil {
			t.Log(kilnTail(srv, 40))
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Errorf("kiln: %v", err)
		}
		if t.Failed() {
			t.Logf("kiln:\n%s", kilnTail(srv, 60))
		}
	})
	base := srv.env.URL

	call := func(method, path string, body []byte) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	big := bytes.Repeat([]byte("x"), 1001)
	bigD := digest.FromBytes(big)
	if status, body, _ := call("POST", "/v2/lim/blobs/uploads/?digest="+string(bigD), big); status != http.StatusRequestEntityTooLarge ||
		!strings.Contains(body, "BLOB_UPLOAD_INVALID") {
		t.Fatalf("blob past max_blob_size: %d %s, want 413 BLOB_UPLOAD_INVALID", status, body)
	}
	if status, _, _ := call("HEAD", "/v2/lim/blobs/"+string(bigD), nil); status != http.StatusNotFound {
		t.Fatalf("refused blob: HEAD %d, want 404", status)
	}

	session := func() string {
		t.Helper()
		status, body, hdr := call("POST", "/v2/lim/blobs/uploads/", nil)
		if status != http.StatusAccepted {
			t.Fatalf("open session: %d %s", status, body)
		}
		return hdr.Get("Location")
	}

	// An upload that sends part of its body and stops: it holds the only
	// upload slot until the stall timeout cuts it.
	c, err := net.Dial("tcp", srv.env.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "PATCH "+session()+" HTTP/1.1\r\nHost: kiln\r\nContent-Length: 500\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	// Once the stalled request holds the slot a second upload is turned
	// away, while other clients are still answered.
	waitForHeldSlot := func() (int, string, http.Header) {
		s := session()
		for range 50 {
			status, body, hdr := call("PATCH", s, []byte("abc"))
			if status != http.StatusAccepted {
				return status, body, hdr
			}
			// The stalled request had not reached its handler yet.
			if status, body, _ := call("DELETE", s, nil); status != http.StatusNoContent {
				t.Fatalf("cancel session: %d %s", status, body)
			}
			s = session()
		}
		t.Fatal("uploads kept being admitted while one held the only slot")
		return 0, "", nil
	}
	status, body, hdr := waitForHeldSlot()
	if status != http.StatusTooManyRequests || !strings.Contains(body, "TOOMANYREQUESTS") || hdr.Get("Retry-After") == "" {
		t.Fatalf("upload past max_concurrent_uploads: %d %q %s, want 429 TOOMANYREQUESTS with Retry-After", status, hdr.Get("Retry-After"), body)
	}
	if status, _, _ := call("GET", "/v2/", nil); status != http.StatusOK {
		t.Fatalf("GET /v2/ while an upload stalls: %d", status)
	}

	// The deadline only keeps a kiln that never cuts the stall from
	// hanging the test.
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("stalled upload's connection still open")
		}
	}

	// The stalled request let its slot go.
	content := []byte("after the stall")
	s := session()
	if status, body, _ := call("PATCH", s, content); status != http.StatusAccepted {
		t.Fatalf("upload after the stall was cut: %d %s", status, body)
	}
	if status, body, _ := call("PUT", s+"?digest="+string(digest.FromBytes(content)), nil); status != http.StatusCreated {
		t.Fatalf("finish upload: %d %s", status, body)
	}
}
