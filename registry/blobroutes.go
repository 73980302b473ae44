package registry

import (
	"errors"
	"net/http"

	"kiln/blobs"
	"kiln/storage"
)

func (a *api) blob(w http.ResponseWriter, r *http.Request, name, dg string) error {
	d, err := blobs.ParseDigest(dg)
	if err != nil {
		return err
	}
	if r.Method == http.MethodDelete {
		return a.blobs.DeleteBlob(w, r, name, d)
	}
	if a.opts.Upstream != nil {
		_, err := a.store.BlobSize(r.Context(), name, d)
		switch {
		case errors.Is(err, storage.ErrBlobUnknown):
			if handled, err := a.opts.Upstream.ServeBlob(w, r, name, d); handled {
				return err
			}
		case err == nil && r.Method == http.MethodGet:
			a.opts.Upstream.BlobHit(r.Context(), name)
		}
	}
	return a.blobs.ServeBlob(w, r, name, d)
}

func (a *api) startUpload(w http.ResponseWriter, r *http.Request, name, _ string) error {
	if err := a.checkPush(r, name); err != nil {
		return err
	}
	return a.blobs.StartUpload(w, r, name)
}

func (a *api) upload(w http.ResponseWriter, r *http.Request, name, id string) error {
	switch r.Method {
	case http.MethodGet:
		return a.blobs.UploadStatus(w, r, name, id)
	case http.MethodPatch:
		return a.blobs.PatchUpload(w, r, name, id)
	case http.MethodPut:
		return a.blobs.FinishUpload(w, r, name, id)
	default:
		return a.blobs.CancelUpload(w, r, name, id)
	}
}
