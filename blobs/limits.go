package blobs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"kiln/auth/identity"
	"kiln/distspec"
)

// UploadGate caps the upload requests that carry a body at once: in all,
// and per client (a user, or an address when anonymous), who may hold
// only a quarter of the slots (at least one), so that one client
// trickling bytes into many uploads cannot hold them all. A nil gate
// lets everything through.
type UploadGate struct {
	total, perClient int

	mu       sync.Mutex
	inUse    int
	byClient map[string]int // only clients holding slots
}

// NewUploadGate returns a gate for n uploads at once; n <= 0 means no cap.
func NewUploadGate(n int) *UploadGate {
	if n <= 0 {
		return nil
	}
	return &UploadGate{total: n, perClient: max(1, n/4), byClient: map[string]int{}}
}

// take gives client a slot, or says why not.
func (g *UploadGate) take(client string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byClient[client] >= g.perClient {
		return distspec.TooManyRequests.WithMessage("this client already has " + strconv.Itoa(g.perClient) +
			" uploads in progress, its share of limits.max_concurrent_uploads " + strconv.Itoa(g.total) + "; retry later")
	}
	if g.inUse >= g.total {
		return distspec.TooManyRequests.WithMessage("too many uploads in progress (limits.max_concurrent_uploads " +
			strconv.Itoa(g.total) + "); retry later")
	}
	g.inUse++
	g.byClient[client]++
	return nil
}

func (g *UploadGate) give(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inUse--
	if g.byClient[client]--; g.byClient[client] == 0 {
		delete(g.byClient, client)
	}
}

// retryAfter is what a refused upload is told to wait, in seconds.
const retryAfter = "5"

// admit takes a slot for an upload request with a body, or refuses it
// with 429 at once: waiting would hold the client's connection anyway.
// Requests without a body (opening or closing a session) are quick and
// pass freely. The caller runs the returned release when done.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	if h.Uploads == nil || r.ContentLength == 0 {
		return func() {}, nil
	}
	client := identity.Client(r)
	if err := h.Uploads.take(client); err != nil {
		w.Header().Set("Retry-After", retryAfter)
		refuseBody(w)
		return nil, err
	}
	return func() { h.Uploads.give(client) }, nil
}

// errBlobTooLarge marks a body that went past limits.max_blob_size.
var errBlobTooLarge = errors.New("blob exceeds limits.max_blob_size")

// blobTooLarge is the answer to an upload past the limit. The spec has no
// code for it; BLOB_UPLOAD_INVALID is its "can no longer proceed", which
// holds: the session is dropped.
func (h *Handler) blobTooLarge() error {
	return distspec.BlobUploadInvalid.WithStatus(http.StatusRequestEntityTooLarge).
		WithMessage("blob is larger than " + strconv.FormatInt(h.MaxBlobSize, 10) + " bytes (limits.max_blob_size)")
}

// sizeLimited yields r until more than left bytes come, then fails with
// errBlobTooLarge: a body of unknown length (chunked) is counted as it
// streams.
type sizeLimited struct {
	r    io.Reader
	left int64
}

func (s *sizeLimited) Read(p []byte) (int, error) {
	if s.left < 0 {
		return 0, errBlobTooLarge
	}
	// Read one byte past the limit to tell "exactly at it" from "past it".
	if int64(len(p)) > s.left+1 {
		p = p[:s.left+1]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if s.left < 0 {
		return n, errBlobTooLarge
	}
	return n, err
}

// refuseBody closes the connection after an answer given without reading
// the request's body; net/http would otherwise read up to 256 KiB of it
// first, to keep the connection.
func refuseBody(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
}

// limitBody checks an upload's body against MaxBlobSize when the blob
// already holds have bytes: a declared size (Content-Length, or the
// Content-Range end) past it is refused before reading, and body is
// otherwise cut off past it.
func (h *Handler) limitBody(w http.ResponseWriter, r *http.Request, have, rangeEnd int64, body io.Reader) (io.Reader, error) {
	if h.MaxBlobSize <= 0 {
		return body, nil
	}
	left := h.MaxBlobSize - have
	if left < 0 || rangeEnd > h.MaxBlobSize || (r.ContentLength > 0 && r.ContentLength > left) {
		refuseBody(w)
		return nil, h.blobTooLarge()
	}
	return &sizeLimited{r: body, left: left}, nil
}

// dropSession cancels an upload session that went past the size limit, so
// none of its data stays behind. The client may be gone: its context
// must not stop the cleanup.
func (h *Handler) dropSession(r *http.Request, repo, id string) {
	if err := h.Store.CancelUpload(context.WithoutCancel(r.Context()), repo, id); err != nil {
		h.Logger.Warn("dropping oversized upload", "repo", repo, "id", id, "err", err)
	}
}
