package blobs

import (
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/opencontainers/go-digest"

	"kiln/distspec"
	"kiln/storage"
)

// Handler serves blobs and blob uploads of a store. Its methods are called
// by the router with the repository name already validated.
type Handler struct {
	Store         *storage.Store
	DeleteEnabled bool
	// Redirect answers a blob GET with 307 to a URL the store hands out
	// (a presigned S3 URL), so the bytes bypass kiln; HEAD stays local.
	Redirect bool
	// MaxBlobSize refuses uploads of larger blobs with 413; 0: no limit.
	MaxBlobSize int64
	// Uploads caps the upload requests with a body in flight; nil: no cap.
	Uploads *UploadGate
	Logger  *slog.Logger
}

// ParseDigest parses a digest from a URL, accepting only the algorithms kiln
// stores.
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", distspec.DigestInvalid.WithMessage("invalid digest " + quote(s))
	}
	if d.Algorithm() != digest.SHA256 && d.Algorithm() != digest.SHA512 {
		return "", distspec.DigestInvalid.WithMessage("unsupported digest algorithm " + quote(string(d.Algorithm())))
	}
	return d, nil
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return "\"" + s + "\""
}

// bodyError marks a failure to read the request body: the client's fault,
// unlike a failure to write to the store.
type bodyError struct{ err error }

func (e bodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = bodyError{err}
	}
	return n, err
}

// exactReader yields exactly n bytes of r and fails if r has more or fewer,
// so a chunk that does not match its Content-Range is refused whole.
type exactReader struct {
	r    io.Reader
	left int64
}

var errBodyLength = errors.New("body length does not match Content-Range")

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		var one [1]byte
		if n, _ := io.ReadFull(e.r, one[:]); n > 0 {
			return 0, bodyError{errBodyLength}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, bodyError{errBodyLength}
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// storeError maps a store error to the API's error; unknown errors are
// logged and become a 500.
func (h *Handler) storeError(r *http.Request, err error) error {
	var be bodyError
	switch {
	case errors.Is(err, errBlobTooLarge):
		return h.blobTooLarge()
	case errors.As(err, &be):
		return distspec.BlobUploadInvalid.WithMessage(be.Error())
	case errors.Is(err, storage.ErrBlobUnknown):
		return distspec.BlobUnknown
	case errors.Is(err, storage.ErrUploadUnknown):
		return distspec.BlobUploadUnknown
	case errors.Is(err, storage.ErrDigestMismatch):
		return distspec.DigestInvalid
	case errors.Is(err, storage.ErrUnsupportedAlgo):
		return distspec.DigestInvalid.WithMessage("unsupported digest algorithm")
	}
	var ae *distspec.Error
	if errors.As(err, &ae) {
		return ae
	}
	h.Logger.ErrorContext(r.Context(), "store error", "method", r.Method, "path", r.URL.Path, "err", err)
	return distspec.StorageFault(err)
}
