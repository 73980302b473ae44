// Package limits keeps slow or stalled clients from holding kiln's
// connections without putting any bound on how long a transfer that keeps
// moving may take: blob uploads and downloads can last hours.
package limits

import (
	"errors"
	"io"
	"net/http"
	"time"
)

// Stall cuts off a request whose body, or whose response, moves no byte
// for timeout. It works with connection deadlines (through
// http.ResponseController) that are pushed forward as bytes move, at most
// once per extension interval so the hot path costs a clock read, not a
// timer reset per Read or Write.
//
// It must wrap every other writer wrapper (it relies on them passing
// ReadFrom and Unwrap through) so blob GETs keep using sendfile.
func Stall(next http.Handler, timeout time.Duration) http.Handler {
	interval := min(time.Second, timeout/4)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		// Covers what the server writes before the handler does
		// ("100 Continue", sent on the first body read).
		if err := rc.SetWriteDeadline(now.Add(timeout + interval)); errors.Is(err, http.ErrNotSupported) {
			next.ServeHTTP(w, r)
			return
		}
		// Without a body the server is already reading the connection in
		// the background to notice a client going away; a deadline would
		// end that read and cancel the request.
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc.SetReadDeadline(now.Add(timeout + interval))
			r.Body = &stallBody{ReadCloser: r.Body, rc: rc, timeout: timeout, interval: interval, last: now}
		}
		sw := &stallWriter{ResponseWriter: w, rc: rc, timeout: timeout, interval: interval}
		next.ServeHTTP(sw, r)
		// The server flushes the rest of the response after the handler
		// returns: that must not wait forever on a client that stopped
		// reading either.
		rc.SetWriteDeadline(time.Now().Add(timeout))
	})
}

// stallBody pushes the read deadline forward while the body moves.
type stallBody struct {
	io.ReadCloser
	rc                *http.ResponseController
	timeout, interval time.Duration
	last              time.Time // when the deadline was last pushed
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Not at EOF: the server then starts its background read, which must
	// keep having no deadline.
	if n > 0 && err == nil {
		if now := time.Now(); now.Sub(b.last) >= b.interval {
			// timeout+interval: a deadline pushed up to interval ago
			// still leaves a full timeout after the latest byte.
			b.rc.SetReadDeadline(now.Add(b.timeout + b.interval))
			b.last = now
		}
	}
	return n, err
}
