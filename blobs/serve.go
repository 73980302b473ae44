package blobs

import (
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"

	"kiln/distspec"
)

// ServeBlob answers GET and HEAD of blob d in repo, honouring a single
// byte range.
func (h *Handler) ServeBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	size, err := h.Store.BlobSize(r.Context(), repo, d)
	if err != nil {
		return h.storeError(r, err)
	}
	hdr := w.Header()
	etag := `"` + string(d) + `"`
	hdr.Set("Docker-Content-Digest", string(d))
	hdr.Set("ETag", etag)
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Cache-Control", "max-age=31536000")
	hdr.Set("Content-Type", "application/octet-stream")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if h.Redirect && r.Method == http.MethodGet {
		url, err := h.Store.BlobURL(r, d)
		if err != nil {
			// Serving the bytes ourselves still works.
			h.Logger.WarnContext(r.Context(), "blob redirect URL", "digest", d, "err", err)
		} else if url != "" {
			// The client asks the backend again, Range header included.
			for _, k := range []string{"ETag", "Accept-Ranges", "Cache-Control", "Content-Type"} {
				hdr.Del(k)
			}
			hdr.Set("Location", url)
			hdr.Set("Content-Length", "0")
			w.WriteHeader(http.StatusTemporaryRedirect)
			return nil
		}
	}
	start, length, status := int64(0), size, http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" {
		s, n, ok, err := parseByteRange(rh, size)
		if err != nil {
			hdr.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			return distspec.RangeInvalid.WithMessage("range " + quote(rh) + " not satisfiable")
		}
		if ok {
			start, length, status = s, n, http.StatusPartialContent
			hdr.Set("Content-Range", "bytes "+strconv.FormatInt(s, 10)+"-"+strconv.FormatInt(s+n-1, 10)+"/"+strconv.FormatInt(size, 10))
		}
	}
	hdr.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return nil
	}
	f, err := h.Store.OpenBlob(r.Context(), d, start)
	if err != nil {
		return h.storeError(r, err)
	}
	defer f.Close()
	w.WriteHeader(status)
	// An *os.File under a LimitedReader still reaches the connection's
	// ReadFrom, so the filesystem store sends with sendfile.
	if _, err := io.CopyN(w, f, length); err != nil {
		h.Logger.DebugContext(r.Context(), "blob send interrupted", "digest", d, "err", err)
	}
	return nil
}

// DeleteBlob removes repo's link to blob d.
func (h *Handler) DeleteBlob(w http.ResponseWriter, r *http.Request, repo string, d digest.Digest) error {
	if !h.DeleteEnabled {
		return distspec.Unsupported.WithMessage("deletes are disabled (storage.delete.enabled)")
	}
	if err := h.Store.UnlinkBlob(r.Context(), repo, d); err != nil {
		return h.storeError(r, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
