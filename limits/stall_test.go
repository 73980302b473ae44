package limits

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

const testStall = 300 * time.Millisecond

// smallBuffers makes accepted connections keep little in the kernel, so a
// client that stops reading blocks the server's writes quickly. (A small
// receive buffer on the client would stall loopback TCP by itself: its
// window never opens by a full 64 KiB segment.)
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(Stall(h, testStall))
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

func dial(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readToClose reads c until the server closes it. The deadline only keeps
// a broken server from hanging the test.
func readToClose(t *testing.T, c net.Conn) int64 {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after the stall timeout (read %d bytes)", n)
	}
	return n
}

func TestStallCutsStalledBody(t *testing.T) {
	t.Parallel()
	bodyErr := make(chan error, 1)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			_, err := io.Copy(io.Discard, r.Body)
			bodyErr <- err
		}
		w.Write([]byte("ok"))
	}))
	c := dial(t, srv)
	io.WriteString(c, "PUT /up HTTP/1.1\r\nHost: kiln\r\nContent-Length: 1000\r\n\r\n0123456789")

	// The stalled upload holds one connection, not the server.
	resp, err := http.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("concurrent request: status %d", resp.StatusCode)
	}

	err = <-bodyErr
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled body read: %v, want a timeout", err)
	}
	readToClose(t, c)
}

func TestStallSlowBodyIsNotCut(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := startPipeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			io.WriteString(w, strconv.FormatInt(n, 10))
		}))
		pr, pw := io.Pipe()
		go func() {
			// 15 pieces 100ms apart (fake time): 1.5s in all, five
			// stall timeouts.
			for range 15 {
				select {
				case <-time.After(100 * time.Millisecond):
				case <-t.Context().Done(): // the test failed first
					pw.Close()
					return
				}
				if _, err := pw.Write([]byte("0123456789")); err != nil {
					return
				}
			}
			pw.Close()
		}()
		resp, err := srv.client.Post("http://pipe/up", "application/octet-stream", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(got) != "150" {
			t.Fatalf("slow body: %d %q, want 200 150", resp.StatusCode, got)
		}
	})
}

// sparseFile returns a file of size zero bytes that takes no disk space.
func sparseFile(t *testing.T, size int64) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestStallCutsStalledReader(t *testing.T) {
	t.Parallel()
	const size = 256 << 20
	f := sparseFile(t, size)
	sent := make(chan error, 1)
	srv := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		_, err := io.CopyN(w, f, size)
		sent <- err
	}))
	c := dial(t, srv)
	io.WriteString(c, "GET /blob HTTP/1.1\r\nHost: kiln\r\n\r\n")
	// The client reads nothing until the server has given up.
	if err := <-sent; err == nil {
		t.Fatal("sending to a client that reads nothing succeeded")
	}
	if n := readToClose(t, c); n >= size {
		t.Fatalf("client got %d bytes, the whole blob", n)
	}
}

func TestStallSlowReaderIsNotCut(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const size = 4 << 20
		f := sparseFile(t, size)
		sent := make(chan error, 1)
		srv := startPipeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			w.WriteHeader(http.StatusOK)
			_, err := io.CopyN(w, f, size)
			sent <- err
		}))
		c := srv.dial(t)
		go io.WriteString(c, "GET /blob HTTP/1.1\r\nHost: kiln\r\n\r\n")
		br := bufio.NewReaderSize(c, 4<<10)
		status, err := br.ReadString('\n')
		if err != nil || !strings.Contains(status, "200") {
			t.Fatalf("status line %q: %v", status, err)
		}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\r\n" {
				break
			}
		}
		// 32 KiB every 10ms (fake time): about 1.3s for the whole body,
		// several stall timeouts, each with bytes moving.
		buf := make([]byte, 32<<10)
		var got int64
		for got < size {
			time.Sleep(10 * time.Millisecond)
			n, err := io.ReadFull(br, buf[:min(int64(len(buf)), size-got)])
			got += int64(n)
			if err != nil {
				t.Fatalf("after %d bytes: %v (server: %v)", got, err, <-sent)
			}
		}
		if err := <-sent; err != nil {
			t.Fatalf("slow reader was cut: %v", err)
		}
	})
}

// recordingReaderFrom is a ResponseWriter whose ReadFrom records what it
// is handed, as the connection's sendfile path would see it.
type recordingReaderFrom struct {
	httptest.ResponseRecorder
	pieces []io.Reader
}

func (r *recordingReaderFrom) ReadFrom(src io.Reader) (int64, error) {
	r.pieces = append(r.pieces, src)
	return io.Copy(io.Discard, src)
}

func TestReadFromHandsTheFileThrough(t *testing.T) {
	t.Parallel()
	const size = 3<<20 + 5
	f := sparseFile(t, size)
	rec := &recordingReaderFrom{}
	sw := &stallWriter{ResponseWriter: rec, rc: http.NewResponseController(rec), timeout: time.Minute, interval: time.Second}
	lr := &io.LimitedReader{R: f, N: size}
	n, err := sw.ReadFrom(lr)
	if err != nil || n != size || lr.N != 0 {
		t.Fatalf("ReadFrom: %d %v, limit left %d; want %d nil 0", n, err, lr.N, size)
	}
	if len(rec.pieces) == 0 {
		t.Fatal("the underlying ReadFrom was never called")
	}
	for i, p := range rec.pieces {
		l, ok := p.(*io.LimitedReader)
		if !ok || l.R != io.Reader(f) {
			t.Fatalf("piece %d is %T, want *io.LimitedReader over the *os.File", i, p)
		}
	}

	// A bare file is read to its end.
	f.Seek(0, io.SeekStart)
	rec.pieces = nil
	if n, err := sw.ReadFrom(f); err != nil || n != size {
		t.Fatalf("ReadFrom(file): %d %v, want %d", n, err, size)
	}
}
