package registry

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// limitStores runs f against every store kind with the API built by opts.
func limitStores(t *testing.T, opts Options, f func(t *testing.T, srv *httptest.Server)) {
	t.Helper()
	fs, err := storage.NewFilesystem(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*storage.Store{"filesystem": fs, "inmemory": storage.NewInMemory(storage.Options{})} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(New(s, opts))
			// A cleanup, not a defer: held uploads must be let go (their
			// cleanups run first) for Close to return when a test fails.
			t.Cleanup(srv.Close)
			f(t, srv)
		})
	}
}

// openSession starts an upload session in repo and returns its path.
func openSession(t *testing.T, srv *httptest.Server, repo string) string {
	t.Helper()
	r := do(t, srv, "POST", "/v2/"+repo+"/blobs/uploads/", nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("open session: %d %s", r.status, r.body)
	}
	return r.header.Get("Location")
}

// streamed sends body with chunked transfer encoding: no length is
// declared, so the server can only count.
func streamed(t *testing.T, srv *httptest.Server, method, path string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, io.MultiReader(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	if req.ContentLength != 0 || req.TransferEncoding != nil {
		t.Fatalf("request would declare a length")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// declared sends a request claiming a body of size bytes and never sends
// it. The deadline only keeps a server that waits for it from hanging the
// test.
func declared(t *testing.T, srv *httptest.Server, method, path string, size int64, headers ...string) response {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: kiln\r\nContent-Length: " + strconv.FormatInt(size, 10) + "\r\n"
	for i := 0; i+1 < len(headers); i += 2 {
		req += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v (did the server wait for the body?)", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func wantTooLarge(t *testing.T, what string, r response) {
	t.Helper()
	if r.status != http.StatusRequestEntityTooLarge || r.errorCode() != "BLOB_UPLOAD_INVALID" ||
		!strings.Contains(string(r.body), "100 bytes") {
		t.Fatalf("%s: %d %s, want 413 BLOB_UPLOAD_INVALID naming the limit", what, r.status, r.body)
	}
}

// wantNothingKept checks that neither the blob nor the session survived.
func wantNothingKept(t *testing.T, srv *httptest.Server, d digest.Digest, session string) {
	t.Helper()
	if r := do(t, srv, "HEAD", "/v2/lim/blobs/"+string(d), nil); r.status != http.StatusNotFound {
		t.Fatalf("HEAD of the refused blob: %d, want 404", r.status)
	}
	if session == "" {
		return
	}
	if r := do(t, srv, "GET", session, nil); r.status != http.StatusNotFound || r.errorCode() != "BLOB_UPLOAD_UNKNOWN" {
		t.Fatalf("session after refusal: %d %s, want 404 BLOB_UPLOAD_UNKNOWN", r.status, r.body)
	}
	if r := do(t, srv, "PUT", session+"?digest="+string(d), nil); r.status != http.StatusNotFound {
		t.Fatalf("finishing the refused session: %d %s, want 404", r.status, r.body)
	}
}

func TestMaxBlobSize(t *testing.T) {
	t.Parallel()
	at := bytes.Repeat([]byte("a"), 100)
	over := bytes.Repeat([]byte("b"), 101)
	overD := digest.FromBytes(over)
	limitStores(t, Options{MaxBlobSize: 100}, func(t *testing.T, srv *httptest.Server) {
		// A blob exactly at the limit is fine.
		pushBlob(t, srv, "lim", at)

		t.Run("monolithic declared", func(t *testing.T) {
			wantTooLarge(t, "POST", do(t, srv, "POST", "/v2/lim/blobs/uploads/?digest="+string(overD), over))
			wantNothingKept(t, srv, overD, "")
		})
		t.Run("monolithic streamed", func(t *testing.T) {
			wantTooLarge(t, "POST", streamed(t, srv, "POST", "/v2/lim/blobs/uploads/?digest="+string(overD), over))
			wantNothingKept(t, srv, overD, "")
		})
		t.Run("chunks with Content-Range", func(t *testing.T) {
			s := openSession(t, srv, "lim")
			if r := do(t, srv, "PATCH", s, over[:60], "Content-Range", "0-59"); r.status != http.StatusAccepted {
				t.Fatalf("first chunk: %d %s", r.status, r.body)
			}
			wantTooLarge(t, "second chunk", do(t, srv, "PATCH", s, over[60:], "Content-Range", "60-100"))
			wantNothingKept(t, srv, overD, s)
		})
		t.Run("chunks with Content-Length only", func(t *testing.T) {
			s := openSession(t, srv, "lim")
			if r := do(t, srv, "PATCH", s, over[:60]); r.status != http.StatusAccepted {
				t.Fatalf("first chunk: %d %s", r.status, r.body)
			}
			wantTooLarge(t, "last chunk", do(t, srv, "PUT", s+"?digest="+string(overD), over[60:]))
			wantNothingKept(t, srv, overD, s)
		})
		t.Run("declared sizes refused before reading", func(t *testing.T) {
			// Bodies that never come: only the declared size can answer.
			wantTooLarge(t, "POST", declared(t, srv, "POST", "/v2/lim/blobs/uploads/?digest="+string(overD), 1<<40))
			s := openSession(t, srv, "lim")
			wantTooLarge(t, "PATCH", declared(t, srv, "PATCH", s, 1<<40))
			wantNothingKept(t, srv, overD, s)
			s = openSession(t, srv, "lim")
			wantTooLarge(t, "PATCH with Content-Range", declared(t, srv, "PATCH", s, 1001, "Content-Range", "0-1000"))
			wantNothingKept(t, srv, overD, s)
		})
		t.Run("streamed chunks", func(t *testing.T) {
			s := openSession(t, srv, "lim")
			if r := streamed(t, srv, "PATCH", s, over[:60]); r.status != http.StatusAccepted {
				t.Fatalf("first chunk: %d %s", r.status, r.body)
			}
			wantTooLarge(t, "second chunk", streamed(t, srv, "PATCH", s, over[60:]))
			wantNothingKept(t, srv, overD, s)
		})
		t.Run("streamed last chunk", func(t *testing.T) {
			s := openSession(t, srv, "lim")
			if r := streamed(t, srv, "PATCH", s, over[:60]); r.status != http.StatusAccepted {
				t.Fatalf("first chunk: %d %s", r.status, r.body)
			}
			wantTooLarge(t, "PUT", streamed(t, srv, "PUT", s+"?digest="+string(overD), over[60:]))
			wantNothingKept(t, srv, overD, s)
		})
	})
}

func TestMaxManifestSize(t *testing.T) {
	t.Parallel()
	limitStores(t, Options{MaxManifestSize: 300}, func(t *testing.T, srv *httptest.Server) {
		cfg := []byte(`{}`)
		c := pushBlob(t, srv, "lim", cfg)
		small := imageManifest(c, len(cfg))
		if r := do(t, srv, "PUT", "/v2/lim/manifests/small", small, "Content-Type", ociManifest); r.status != http.StatusCreated {
			t.Fatalf("manifest of %d bytes: %d %s", len(small), r.status, r.body)
		}
		big := imageManifest(c, len(cfg), c, c, c)
		if len(big) <= 300 {
			t.Fatalf("test manifest is only %d bytes", len(big))
		}
		for _, send := range []func(*testing.T, *httptest.Server, string, string, []byte) response{
			func(t *testing.T, srv *httptest.Server, method, path string, body []byte) response {
				return do(t, srv, method, path, body, "Content-Type", ociManifest)
			},
			streamed,
		} {
			r := send(t, srv, "PUT", "/v2/lim/manifests/big", big)
			if r.status != http.StatusRequestEntityTooLarge || r.errorCode() != "MANIFEST_INVALID" ||
				!strings.Contains(string(r.body), "300 bytes") {
				t.Fatalf("big manifest: %d %s, want 413 MANIFEST_INVALID naming the limit", r.status, r.body)
			}
		}
		if r := do(t, srv, "GET", "/v2/lim/manifests/big", nil); r.status != http.StatusNotFound {
			t.Fatalf("refused manifest is there: %d", r.status)
		}
	})
}

// heldUpload is an upload request whose body stays open until released.
type heldUpload struct {
	pw   *io.PipeWriter
	done chan int // the response status
}

// holdUpload starts a streamed PATCH to session from the loopback address
// from and returns once the server is reading its body, so the request
// holds an upload slot. Each client may hold only a share of the slots:
// holds from different addresses fill them all.
func holdUpload(t *testing.T, srv *httptest.Server, session, from string) *heldUpload {
	t.Helper()
	pr, pw := io.Pipe()
	h := &heldUpload{pw: pw, done: make(chan int, 1)}
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	req, err := http.NewRequest("PATCH", srv.URL+session, pr)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	t.Cleanup(client.CloseIdleConnections)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			h.done <- 0
			return
		}
		resp.Body.Close()
		h.done <- resp.StatusCode
	}()
	// The pipe hands this over only when the server reads it. 1 MiB
	// outlasts any buffering between here and the handler.
	if _, err := pw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *heldUpload) release(t *testing.T) {
	t.Helper()
	h.pw.Close()
	if status := <-h.done; status != http.StatusAccepted {
		t.Fatalf("held upload finished with %d, want 202", status)
	}
}

func TestUploadCap(t *testing.T) {
	t.Parallel()
	limitStores(t, Options{MaxConcurrentUploads: 2}, func(t *testing.T, srv *httptest.Server) {
		a := holdUpload(t, srv, openSession(t, srv, "cap"), "127.0.0.2")
		b := holdUpload(t, srv, openSession(t, srv, "cap"), "127.0.0.3")

		// Opening a session carries no body: not counted.
		s := openSession(t, srv, "cap")
		content := []byte("third")
		d := digest.FromBytes(content)
		for what, r := range map[string]response{
			"PATCH":           do(t, srv, "PATCH", s, content),
			"streamed PATCH":  streamed(t, srv, "PATCH", s, content),
			"PUT":             do(t, srv, "PUT", s+"?digest="+string(d), content),
			"monolithic POST": do(t, srv, "POST", "/v2/cap/blobs/uploads/?digest="+string(d), content),
		} {
			if r.status != http.StatusTooManyRequests || r.errorCode() != "TOOMANYREQUESTS" || r.header.Get("Retry-After") == "" {
				t.Fatalf("%s over the cap: %d %q %s, want 429 TOOMANYREQUESTS with Retry-After", what, r.status, r.header.Get("Retry-After"), r.body)
			}
		}
		// A refused request did not consume the session.
		if r := do(t, srv, "GET", s, nil); r.status != http.StatusNoContent || r.header.Get("Range") != "0-0" {
			t.Fatalf("session after refusals: %d %q", r.status, r.header.Get("Range"))
		}

		a.release(t)
		if r := do(t, srv, "PATCH", s, content); r.status != http.StatusAccepted {
			t.Fatalf("PATCH after a slot freed: %d %s", r.status, r.body)
		}
		if r := do(t, srv, "PUT", s+"?digest="+string(d), nil); r.status != http.StatusCreated {
			t.Fatalf("finishing: %d %s", r.status, r.body)
		}
		b.release(t)
	})
}
