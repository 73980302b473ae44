package accesslog

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve runs h behind Handler on a real server (so the writer underneath is
// net/http's, with ReadFrom), makes one request and returns the log line.
func serve(t *testing.T, h http.HandlerFunc, target string) (*http.Response, []byte, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	srv := httptest.NewServer(Handler(h, logger))
	resp, err := http.Get(srv.URL + target)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Close waits for the handler, hence for the log line.
	srv.Close()
	return resp, body, parseLine(t, buf.Bytes())
}

func parseLine(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if n := bytes.Count(b, []byte("\n")); n != 1 {
		t.Fatalf("want one log line, got %d: %s", n, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func checkLine(t *testing.T, line map[string]any, status, bytes int) {
	t.Helper()
	if line["msg"] != "request" || line["level"] != "INFO" {
		t.Errorf("msg %v level %v", line["msg"], line["level"])
	}
	if line["status"] != float64(status) {
		t.Errorf("status logged %v, want %d", line["status"], status)
	}
	if line["bytes"] != float64(bytes) {
		t.Errorf("bytes logged %v, want %d", line["bytes"], bytes)
	}
	if line["method"] != "GET" {
		t.Errorf("method logged %v", line["method"])
	}
	if d, ok := line["duration"].(float64); !ok || d < 0 {
		t.Errorf("duration logged %v", line["duration"])
	}
	if r, _ := line["remote"].(string); !strings.HasPrefix(r, "127.0.0.1:") {
		t.Errorf("remote logged %v", line["remote"])
	}
}

func TestStatusAndBytes(t *testing.T) {
	resp, body, line := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, "not here")
	}, "/v2/foo/manifests/latest?token=s3cret")
	if resp.StatusCode != http.StatusNotFound || string(body) != "not here" {
		t.Fatalf("client got %d %q", resp.StatusCode, body)
	}
	checkLine(t, line, 404, len("not here"))
	if line["path"] != "/v2/foo/manifests/latest" {
		t.Errorf("path logged %v", line["path"])
	}
	if b, _ := json.Marshal(line); bytes.Contains(b, []byte("s3cret")) {
		t.Errorf("query string leaked into the log: %s", b)
	}
}

func TestImplicit200(t *testing.T) {
	_, _, line := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello"))
	}, "/v2/")
	checkLine(t, line, 200, 5)

	_, _, line = serve(t, func(w http.ResponseWriter, r *http.Request) {}, "/v2/")
	checkLine(t, line, 200, 0)
}

func TestInformationalThenFinalStatus(t *testing.T) {
	resp, _, line := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
	}, "/")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("client got %d", resp.StatusCode)
	}
	checkLine(t, line, 202, 0)
}

// Blob downloads copy an *os.File into the writer; the wrapper must offer
// ReadFrom so net/http can still use sendfile, and count what it sent.
func TestReadFromReachesConnection(t *testing.T) {
	content := bytes.Repeat([]byte("kiln"), 64<<10)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	_, body, line := serve(t, func(w http.ResponseWriter, r *http.Request) {
		rf, ok := w.(io.ReaderFrom)
		if !ok {
			t.Error("wrapped writer is not an io.ReaderFrom")
			return
		}
		if _, ok := w.(*responseWriter).ResponseWriter.(io.ReaderFrom); !ok {
			t.Error("net/http's writer lost ReadFrom; the test no longer covers delegation")
		}
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Length", "262144")
		if n, err := rf.ReadFrom(f); err != nil || n != int64(len(content)) {
			t.Errorf("ReadFrom = %d, %v", n, err)
		}
	}, "/blob")
	if !bytes.Equal(body, content) {
		t.Fatalf("client got %d bytes, want %d", len(body), len(content))
	}
	checkLine(t, line, 200, len(content))
}

// Without ReadFrom underneath (a ResponseRecorder), ReadFrom falls back to
// plain writes instead of recursing into itself.
func TestReadFromFallback(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, strings.NewReader("abcdef")) // io.Copy picks ReadFrom
	}), logger)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.RemoteAddr = "127.0.0.1:1234"
	h.ServeHTTP(rec, req)
	if rec.Body.String() != "abcdef" {
		t.Fatalf("body %q", rec.Body)
	}
	checkLine(t, parseLine(t, buf.Bytes()), 200, 6)
}

func TestFlushAndResponseController(t *testing.T) {
	_, body, line := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("wrapped writer is not an http.Flusher")
		}
		rc := http.NewResponseController(w)
		// Deadlines are only on net/http's writer: found through Unwrap.
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline through Unwrap: %v", err)
		}
		io.WriteString(w, "part1")
		if err := rc.Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		io.WriteString(w, "part2")
	}, "/stream")
	if string(body) != "part1part2" {
		t.Fatalf("body %q", body)
	}
	checkLine(t, line, 200, 10)
}

func BenchmarkHandler(b *testing.B) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}), logger)
	req := httptest.NewRequest("GET", "/v2/", nil)
	w := discardWriter{http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

func TestRequestIDAndObserver(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	var gotIn, gotOut int64
	var gotStatus int
	var seenID string
	h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenID = RequestID(r.Context())
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("done"))
	}), Options{Logger: logger, Observe: func(r *http.Request, status int, in, out int64, d time.Duration) {
		gotStatus, gotIn, gotOut = status, in, out
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/v2/x/blobs/uploads/1", strings.NewReader("twelve bytes")))
	id := rec.Header().Get("X-Request-Id")
	if id == "" || id != seenID || !strings.Contains(logs.String(), "request_id="+id) {
		t.Errorf("request id %q, handler saw %q, log %q", id, seenID, logs.String())
	}
	if gotStatus != 201 || gotIn != 12 || gotOut != 4 {
		t.Errorf("observed %d %d %d", gotStatus, gotIn, gotOut)
	}
	// A client's own id is kept; a hostile one is replaced.
	for in, keep := range map[string]bool{"abc-123": true, "bad id\x00": false, strings.Repeat("x", 65): false} {
		req := httptest.NewRequest("GET", "/v2/", nil)
		req.Header.Set("X-Request-Id", in)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if (rec.Header().Get("X-Request-Id") == in) != keep {
			t.Errorf("X-Request-Id %q: answered %q", in, rec.Header().Get("X-Request-Id"))
		}
	}
}
