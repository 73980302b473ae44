// Package accesslog is an HTTP middleware that writes one slog line per request.
package accesslog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Observer receives every finished request (metrics listen here).
type Observer func(r *http.Request, status int, bytesIn, bytesOut int64, d time.Duration)

// Lines chooses which finished requests get an access line.
type Lines int

const (
	AllLines   Lines = iota // every request
	ErrorLines              // responses with status 400 and above
	NoLines                 // none: only the observer sees requests
)

// Options configure New.
type Options struct {
	Logger *slog.Logger
	// Observe, when set, sees every request, whether it is logged or not.
	Observe Observer
	Lines   Lines
}

// Handler is New logging every request, with no observer.
func Handler(next http.Handler, logger *slog.Logger) http.Handler {
	return New(next, Options{Logger: logger})
}

// New calls next and then logs the request's method, path, status,
// response bytes, duration, remote address and request id, at info level
// unless a handler marked it Quiet. The query string is left out because
// it may carry tokens.
func New(next http.Handler, o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Read before next runs: handlers may rewrite r.URL.
		method, path, remote := r.Method, r.URL.Path, r.RemoteAddr
		req := &request{id: requestID(r)}
		w.Header().Set("X-Request-Id", req.id)
		// The access line names the id itself, with the context from before
		// it, so ContextHandler does not add it a second time.
		logCtx := r.Context()
		r = r.WithContext(context.WithValue(logCtx, requestKey{}, req))
		body := &countingBody{ReadCloser: r.Body}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = body
		}
		rw := &responseWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		status := rw.status
		if status == 0 {
			status = http.StatusOK // net/http's answer when nothing was written
		}
		d := time.Since(start)
		if o.Lines == AllLines || o.Lines == ErrorLines && status >= 400 {
			level := slog.LevelInfo
			if req.quiet.Load() {
				level = slog.LevelDebug
			}
			o.Logger.LogAttrs(logCtx, level, "request",
				slog.String("method", method),
				slog.String("path", path),
				slog.Int("status", status),
				slog.Int64("bytes", rw.bytes),
				slog.Duration("duration", d),
				slog.String("remote", remote),
				slog.String("request_id", req.id),
			)
		}
		if o.Observe != nil {
			o.Observe(r, status, body.n, rw.bytes, d)
		}
	})
}

// request is what the access log keeps in a request's context.
type request struct {
	id    string
	quiet atomic.Bool // set by handlers, possibly on other goroutines
}

type requestKey struct{}

// Quiet makes the access line of the request ctx belongs to a debug line.
// It is for kiln's own traffic, such as its builders' pushes, which would
// drown the users' requests. Outside a request it does nothing.
func Quiet(ctx context.Context) {
	if req, ok := ctx.Value(requestKey{}).(*request); ok {
		req.quiet.Store(true)
	}
}

// RequestID returns the id of the request ctx belongs to, "" outside one.
func RequestID(ctx context.Context) string {
	if req, ok := ctx.Value(requestKey{}).(*request); ok {
		return req.id
	}
	return ""
}

var idSeq atomic.Uint64

// requestID keeps a sane X-Request-Id from the client (a proxy in front
// may have set it) and otherwise makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && printable(id) {
		return id
	}
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-" + strconv.FormatUint(idSeq.Add(1), 10)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// countingBody counts the request body bytes a handler reads.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// responseWriter records the status and body size. It passes ReadFrom and
// Flush through so wrapping costs neither sendfile nor streaming, and
// Unwrap lets http.ResponseController reach the connection's writer.
type responseWriter struct {
	http.ResponseWriter
	status int // final status; 0 until the header is written
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	// 1xx other than 101 are informational: the final status comes later.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom lets io.Copy hand the body source to the connection's ReadFrom,
// which uses sendfile for files.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		// writerOnly hides this ReadFrom from io.Copy, which would recurse.
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK // flushing sends the header
		}
		f.Flush()
	}
}

// Unwrap is what http.ResponseController uses to find Hijack, deadlines
// and full-duplex support on the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type writerOnly struct{ io.Writer }
