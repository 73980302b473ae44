package distspec

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Error is one API error: a spec code, a message, optional detail and the
// HTTP status it is sent with.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
	Status  int    `json:"-"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// WithMessage returns a copy of e carrying msg.
func (e *Error) WithMessage(msg string) *Error {
	c := *e
	c.Message = msg
	return &c
}

// WithDetail returns a copy of e carrying detail.
func (e *Error) WithDetail(detail any) *Error {
	c := *e
	c.Detail = detail
	return &c
}

// WithStatus returns a copy of e sent with status instead of its default.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

func code(c string, status int, msg string) *Error {
	return &Error{Code: c, Status: status, Message: msg}
}

// The codes of the distribution spec, with their usual statuses.
var (
	BlobUnknown         = code("BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry")
	BlobUploadInvalid   = code("BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid")
	BlobUploadUnknown   = code("BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry")
	DigestInvalid       = code("DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content")
	ManifestBlobUnknown = code("MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, "manifest references a manifest or blob unknown to registry")
	ManifestInvalid     = code("MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid")
	ManifestUnknown     = code("MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry")
	NameInvalid         = code("NAME_INVALID", http.StatusBadRequest, "invalid repository name")
	NameUnknown         = code("NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry")
	SizeInvalid         = code("SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length")
	Unauthorized        = code("UNAUTHORIZED", http.StatusUnauthorized, "authentication required")
	Denied              = code("DENIED", http.StatusForbidden, "requested access to the resource is denied")
	Unsupported         = code("UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported")
	TooManyRequests     = code("TOOMANYREQUESTS", http.StatusTooManyRequests, "too many requests")
	RangeInvalid        = code("BLOB_UPLOAD_INVALID", http.StatusRequestedRangeNotSatisfiable, "requested range not satisfiable")
	Internal            = code("UNKNOWN", http.StatusInternalServerError, "internal server error")
)

type envelope struct {
	Errors []*Error `json:"errors"`
}

// WriteError sends err as the spec's error JSON. An error that is not an *Error
// is reported as a 500 without leaking its text to the client.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = Internal
	}
	body, _ := json.Marshal(envelope{Errors: []*Error{e}})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(e.Status)
	w.Write(body)
}
