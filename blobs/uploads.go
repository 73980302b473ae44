package blobs

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"

	"kiln/distspec"
	"kiln/storage"
)

// StartUpload answers POST /v2/<repo>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest=), or a new session.
func (h *Handler) StartUpload(w http.ResponseWriter, r *http.Request, repo string) error {
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		mounted, err := h.mount(r, repo, mount, q.Get("from"))
		if err != nil {
			return err
		}
		if mounted != "" {
			return blobCreated(w, repo, mounted)
		}
		// Not mountable: the spec says to open a session instead.
	} else if dg := q.Get("digest"); dg != "" {
		d, err := ParseDigest(dg)
		if err != nil {
			return err
		}
		release, err := h.admit(w, r)
		if err != nil {
			return err
		}
		defer release()
		body, err := h.limitBody(w, r, 0, 0, bodyReader{r.Body})
		if err != nil {
			return err
		}
		// PutBlob removes what it wrote on any error, a size overrun included.
		if _, err := h.Store.PutBlob(r.Context(), repo, d, body); err != nil {
			return h.storeError(r, err)
		}
		return blobCreated(w, repo, d)
	}
	u, err := h.Store.NewUpload(r.Context(), repo)
	if err != nil {
		return h.storeError(r, err)
	}
	uploadAccepted(w, u, http.StatusAccepted)
	return nil
}

// mount links blob d into repo when repo may see it: from the named source
// repository, or, without from, when the store holds it at all.
func (h *Handler) mount(r *http.Request, repo, mount, from string) (digest.Digest, error) {
	d, err := ParseDigest(mount)
	if err != nil {
		return "", err
	}
	ctx := r.Context()
	if from != "" {
		if !distspec.ValidName(from) {
			return "", distspec.NameInvalid.WithMessage("invalid repository name in from: " + quote(from))
		}
		if _, err := h.Store.BlobSize(ctx, from, d); err != nil {
			if errors.Is(err, storage.ErrBlobUnknown) {
				return "", nil
			}
			return "", h.storeError(r, err)
		}
	}
	if err := h.Store.LinkBlob(ctx, repo, d); err != nil {
		if errors.Is(err, storage.ErrBlobUnknown) {
			return "", nil
		}
		return "", h.storeError(r, err)
	}
	return d, nil
}

// UploadStatus answers GET of an upload session: where it stands.
func (h *Handler) UploadStatus(w http.ResponseWriter, r *http.Request, repo, id string) error {
	u, err := h.Store.GetUpload(r.Context(), repo, id)
	if err != nil {
		return h.storeError(r, err)
	}
	uploadAccepted(w, u, http.StatusNoContent)
	return nil
}

// PatchUpload appends a chunk (streamed, or with a Content-Range that must
// start where the session stands).
func (h *Handler) PatchUpload(w http.ResponseWriter, r *http.Request, repo, id string) error {
	release, err := h.admit(w, r)
	if err != nil {
		return err
	}
	defer release()
	offset, body, err := h.sizedChunk(w, r, repo, id)
	if err != nil {
		return err
	}
	u, err := h.Store.AppendUpload(r.Context(), repo, id, offset, body)
	if errors.Is(err, errBlobTooLarge) {
		h.dropSession(r, repo, id)
	}
	if err != nil {
		if errors.Is(err, storage.ErrUploadOutOfOrder) {
			setUploadHeaders(w, u)
			return distspec.RangeInvalid.WithMessage("chunk does not start at the end of the upload")
		}
		return h.storeError(r, err)
	}
	uploadAccepted(w, u, http.StatusAccepted)
	return nil
}

// FinishUpload answers PUT ?digest=: the optional last chunk, then the
// digest check and the move into the store.
func (h *Handler) FinishUpload(w http.ResponseWriter, r *http.Request, repo, id string) error {
	dg := r.URL.Query().Get("digest")
	if dg == "" {
		return distspec.DigestInvalid.WithMessage("digest query parameter is required")
	}
	d, err := ParseDigest(dg)
	if err != nil {
		return err
	}
	release, err := h.admit(w, r)
	if err != nil {
		return err
	}
	defer release()
	offset, body, err := h.sizedChunk(w, r, repo, id)
	if err != nil {
		return err
	}
	u, err := h.Store.FinishUpload(r.Context(), repo, id, offset, body, d)
	if errors.Is(err, errBlobTooLarge) {
		h.dropSession(r, repo, id)
	}
	if err != nil {
		if errors.Is(err, storage.ErrUploadOutOfOrder) {
			setUploadHeaders(w, u)
			return distspec.RangeInvalid.WithMessage("chunk does not start at the end of the upload")
		}
		return h.storeError(r, err)
	}
	return blobCreated(w, repo, d)
}

// CancelUpload answers DELETE of a session.
func (h *Handler) CancelUpload(w http.ResponseWriter, r *http.Request, repo, id string) error {
	if err := h.Store.CancelUpload(r.Context(), repo, id); err != nil {
		return h.storeError(r, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sizedChunk is chunk held to MaxBlobSize: a chunk that would take
// session id past it, declared or streamed, is refused and the session
// dropped.
func (h *Handler) sizedChunk(w http.ResponseWriter, r *http.Request, repo, id string) (int64, io.Reader, error) {
	offset, body, err := chunk(r)
	if err != nil || h.MaxBlobSize <= 0 {
		return offset, body, err
	}
	u, err := h.Store.GetUpload(r.Context(), repo, id)
	if err != nil {
		return 0, nil, h.storeError(r, err)
	}
	var rangeEnd int64 // where a Content-Range says the chunk ends
	if er, ok := body.(*exactReader); ok {
		rangeEnd = offset + er.left
	}
	body, err = h.limitBody(w, r, u.Size, rangeEnd, body)
	if err != nil {
		h.dropSession(r, repo, id)
		return 0, nil, err
	}
	return offset, body, nil
}

// chunk returns the request body as an upload chunk, and the offset it
// claims to start at (-1 when it claims none).
func chunk(r *http.Request) (int64, io.Reader, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, bodyReader{r.Body}, nil
	}
	first, last, err := parseContentRange(cr)
	if err != nil {
		return 0, nil, distspec.RangeInvalid.WithMessage("invalid Content-Range " + quote(cr))
	}
	n := last - first + 1
	if r.ContentLength >= 0 && r.ContentLength != n {
		return 0, nil, distspec.SizeInvalid.WithMessage("Content-Length does not match Content-Range")
	}
	return first, &exactReader{r: bodyReader{r.Body}, left: n}, nil
}

func uploadLocation(u *storage.Upload) string {
	return "/v2/" + u.Repo + "/blobs/uploads/" + u.ID
}

func setUploadHeaders(w http.ResponseWriter, u *storage.Upload) {
	if u == nil {
		return
	}
	hdr := w.Header()
	hdr.Set("Location", uploadLocation(u))
	hdr.Set("Docker-Upload-UUID", u.ID)
	end := u.Size - 1
	if end < 0 {
		end = 0
	}
	hdr.Set("Range", "0-"+strconv.FormatInt(end, 10))
}

func uploadAccepted(w http.ResponseWriter, u *storage.Upload, status int) {
	setUploadHeaders(w, u)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) error {
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+repo+"/blobs/"+string(d))
	hdr.Set("Docker-Content-Digest", string(d))
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}
