package limits

import (
	"io"
	"net/http"
	"time"
)

// Bounds of the pieces ReadFrom hands the connection. A piece must get out
// within the stall timeout, so it is sized to take about one extension
// interval at the rate the previous piece went. It at most doubles from
// one piece to the next: the first pieces only fill kernel buffers and
// look far faster than the client really reads.
const (
	minPiece = 64 << 10
	maxPiece = 16 << 20
	// writeSlice bounds one Write to the connection, for the same reason.
	writeSlice = 256 << 10
)

// stallWriter pushes the write deadline forward before each write, and
// passes ReadFrom (sendfile), Flush and Unwrap through.
type stallWriter struct {
	http.ResponseWriter
	rc                *http.ResponseController
	timeout, interval time.Duration
	last              time.Time // zero until the handler first writes
}

// extend pushes the write deadline to a full timeout from now when force
// is set, on the handler's first write (however long it worked before),
// or when the last push is an interval old.
func (w *stallWriter) extend(force bool) {
	now := time.Now()
	if force || w.last.IsZero() || now.Sub(w.last) >= w.interval {
		w.rc.SetWriteDeadline(now.Add(w.timeout + w.interval))
		w.last = now
	}
}

func (w *stallWriter) WriteHeader(code int) {
	w.extend(false)
	w.ResponseWriter.WriteHeader(code)
}

func (w *stallWriter) Write(p []byte) (int, error) {
	var done int
	for len(p) > 0 {
		w.extend(false)
		n, err := w.ResponseWriter.Write(p[:min(len(p), writeSlice)])
		done += n
		if err != nil {
			return done, err
		}
		p = p[n:]
	}
	return done, nil
}

// ReadFrom hands src to the underlying ReadFrom in pieces, pushing the
// deadline before each. A piece is an *io.LimitedReader over src's own
// reader, the one shape the connection's sendfile path accepts.
func (w *stallWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	base, left := src, int64(-1) // -1: until EOF
	if lr, ok := src.(*io.LimitedReader); ok {
		if lr.N <= 0 {
			return 0, nil
		}
		base, left = lr.R, lr.N
		defer func() { lr.N = left }()
	}
	var total int64
	piece := int64(minPiece)
	for left != 0 {
		n := piece
		if left > 0 {
			n = min(n, left)
		}
		w.extend(true)
		start := time.Now()
		m, err := rf.ReadFrom(&io.LimitedReader{R: base, N: n})
		total += m
		if left > 0 {
			left -= m
		}
		if err != nil || m < n { // m < n without error: src is exhausted
			return total, err
		}
		piece = nextPiece(m, time.Since(start), w.interval)
	}
	return total, nil
}

// nextPiece sizes the next piece to take about interval at the rate n
// bytes took elapsed, growing by at most a factor of two.
func nextPiece(n int64, elapsed, interval time.Duration) int64 {
	limit := min(2*n, maxPiece)
	if elapsed <= 0 {
		return limit
	}
	p := int64(float64(n) * float64(interval) / float64(elapsed))
	return min(max(p, minPiece), limit)
}

func (w *stallWriter) Flush() {
	w.extend(false)
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides ReadFrom from io.Copy, which would recurse.
type writerOnly struct{ io.Writer }
