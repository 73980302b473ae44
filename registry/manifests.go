package registry

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"kiln/blobs"
	"kiln/distspec"
	"kiln/notify"
	"kiln/storage"
)

// reference is a manifest reference from the URL: a tag or a digest.
type reference struct {
	tag    string
	digest digest.Digest
}

func parseReference(s string) (reference, error) {
	if strings.Contains(s, ":") {
		d, err := blobs.ParseDigest(s)
		return reference{digest: d}, err
	}
	if !distspec.ValidTag(s) {
		return reference{}, distspec.ManifestInvalid.WithMessage("invalid tag " + quote(s))
	}
	return reference{tag: s}, nil
}

func quote(s string) string { return strconv.Quote(truncate(s)) }

// resolve returns the digest a reference names in repo.
func (a *api) resolve(r *http.Request, name string, ref reference) (digest.Digest, error) {
	if ref.digest != "" {
		return ref.digest, nil
	}
	d, err := a.store.ResolveTag(r.Context(), name, ref.tag)
	if errors.Is(err, storage.ErrTagUnknown) {
		return "", distspec.ManifestUnknown.WithDetail(map[string]string{"tag": ref.tag})
	}
	return d, a.internal(r, err)
}

func (a *api) getManifest(w http.ResponseWriter, r *http.Request, name, refArg string) error {
	ref, err := parseReference(refArg)
	if err != nil {
		return err
	}
	m, err := a.lookupManifest(r, name, ref)
	if err != nil {
		return err
	}
	if m, err = a.negotiate(r, name, m); err != nil {
		return err
	}
	if a.opts.Pulls != nil {
		a.opts.Pulls.Note(name, m.Digest)
	}
	hdr := w.Header()
	etag := `"` + string(m.Digest) + `"`
	hdr.Set("Content-Type", m.MediaType)
	hdr.Set("Docker-Content-Digest", string(m.Digest))
	hdr.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hdr.Set("Content-Length", strconv.Itoa(len(m.Content)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(m.Content)
	}
	return nil
}

// lookupManifest finds a manifest for a pull: through the pull-through
// cache for proxied repositories, else in the store.
func (a *api) lookupManifest(r *http.Request, name string, ref reference) (*storage.Manifest, error) {
	if a.opts.Upstream != nil {
		m, handled, err := a.opts.Upstream.Manifest(r.Context(), name, ref.tag, ref.digest)
		if handled {
			if errors.Is(err, storage.ErrTagUnknown) || errors.Is(err, storage.ErrManifestUnknown) {
				return nil, distspec.ManifestUnknown
			}
			return m, a.internal(r, err)
		}
	}
	d, err := a.resolve(r, name, ref)
	if err != nil {
		return nil, err
	}
	m, err := a.store.GetManifest(r.Context(), name, d)
	if errors.Is(err, storage.ErrManifestUnknown) {
		return nil, distspec.ManifestUnknown
	}
	return m, a.internal(r, err)
}

func (a *api) putManifest(w http.ResponseWriter, r *http.Request, name, refArg string) error {
	ref, err := parseReference(refArg)
	if err != nil {
		return err
	}
	if err := a.checkPush(r, name); err != nil {
		return err
	}
	// The one body read whole into memory: bounded by the limit.
	limit := a.opts.MaxManifestSize
	if r.ContentLength > limit {
		return manifestTooLarge(limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return distspec.ManifestInvalid.WithMessage("reading manifest: " + err.Error())
	}
	if int64(len(body)) > limit {
		return manifestTooLarge(limit)
	}
	contentType := r.Header.Get("Content-Type")
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			contentType = mt
		}
	}
	parsed, err := storage.ParseManifest(contentType, body)
	if err != nil {
		return distspec.ManifestInvalid.WithMessage(err.Error())
	}
	alg := digest.SHA256
	if ref.digest != "" {
		alg = ref.digest.Algorithm()
	}
	d := alg.FromBytes(body)
	if ref.digest != "" && ref.digest != d {
		return distspec.DigestInvalid.WithMessage("manifest digest " + string(d) + " does not match " + string(ref.digest))
	}
	tags, err := tagsToSet(r, ref)
	if err != nil {
		return err
	}
	if err := a.checkReferences(r, name, parsed); err != nil {
		return err
	}
	m := storage.Manifest{Digest: d, MediaType: parsed.MediaType, Content: body}
	if err := a.store.PutManifest(r.Context(), name, m, parsed, tags...); err != nil {
		return a.internal(r, err)
	}
	if err := a.publish(r, pushEvents(name, m, tags)...); err != nil {
		return err
	}
	hdr := w.Header()
	if ref.digest != "" {
		for _, t := range tags {
			hdr.Add("OCI-Tag", t)
		}
	}
	hdr.Set("Location", "/v2/"+name+"/manifests/"+string(d))
	hdr.Set("Docker-Content-Digest", string(d))
	if parsed.Subject != nil {
		hdr.Set("OCI-Subject", string(parsed.Subject.Digest))
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// tagsToSet returns the tags a manifest PUT points at the manifest: the
// reference when it is a tag, else the ?tag= parameters of a push by digest.
func tagsToSet(r *http.Request, ref reference) ([]string, error) {
	if ref.tag != "" {
		return []string{ref.tag}, nil
	}
	tags := r.URL.Query()["tag"]
	for _, t := range tags {
		if !distspec.ValidTag(t) {
			return nil, distspec.ManifestInvalid.WithMessage("invalid tag " + quote(t))
		}
	}
	return tags, nil
}

func manifestTooLarge(limit int64) error {
	return distspec.ManifestInvalid.WithStatus(http.StatusRequestEntityTooLarge).
		WithMessage("manifest is larger than " + strconv.FormatInt(limit, 10) + " bytes (limits.max_manifest_size)")
}

// checkReferences makes sure everything the manifest points to is in the
// repository, so that a pull of what was accepted can never fail.
func (a *api) checkReferences(r *http.Request, name string, p *storage.ParsedManifest) error {
	ctx := r.Context()
	// Refresh the links first, then check: a garbage collection running
	// meanwhile then sees them younger than its grace period and keeps (or
	// puts back) what this manifest is about to reference.
	for _, b := range p.Blobs {
		if err := a.store.TouchBlobLink(ctx, name, b.Digest); err != nil {
			return a.internal(r, err)
		}
	}
	for _, c := range p.Manifests {
		if err := a.store.TouchManifestLink(ctx, name, c.Digest); err != nil {
			return a.internal(r, err)
		}
	}
	for _, b := range p.Blobs {
		if _, err := a.store.BlobSize(ctx, name, b.Digest); err != nil {
			if errors.Is(err, storage.ErrBlobUnknown) {
				return distspec.ManifestBlobUnknown.WithDetail(map[string]string{"digest": string(b.Digest)})
			}
			return a.internal(r, err)
		}
	}
	for _, c := range p.Manifests {
		ok, err := a.store.HasManifest(ctx, name, c.Digest)
		if err != nil {
			return a.internal(r, err)
		}
		if !ok {
			return distspec.ManifestBlobUnknown.WithDetail(map[string]string{"digest": string(c.Digest)})
		}
	}
	return nil
}

func (a *api) deleteManifest(w http.ResponseWriter, r *http.Request, name, refArg string) error {
	if !a.opts.DeleteEnabled {
		return distspec.Unsupported.WithMessage("deletes are disabled (storage.delete.enabled)")
	}
	ref, err := parseReference(refArg)
	if err != nil {
		return err
	}
	if ref.tag != "" {
		err = a.store.DeleteTag(r.Context(), name, ref.tag)
	} else {
		err = a.store.DeleteManifest(r.Context(), name, ref.digest)
	}
	switch {
	case errors.Is(err, storage.ErrTagUnknown), errors.Is(err, storage.ErrManifestUnknown):
		return distspec.ManifestUnknown
	case err != nil:
		return a.internal(r, err)
	}
	if a.opts.Upstream != nil {
		if err := a.opts.Upstream.CopyDeleted(r.Context(), name); err != nil {
			return a.internal(r, err)
		}
	}
	if err := a.publish(r, notify.Event{Type: notify.Delete, Repo: name, Tag: ref.tag, Digest: string(ref.digest)}); err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// internal logs an unexpected error and answers with the kind of fault,
// hiding the backend's own text from the client.
func (a *api) internal(r *http.Request, err error) error {
	if err == nil {
		return nil
	}
	var ae *distspec.Error
	if errors.As(err, &ae) {
		return ae
	}
	a.opts.Logger.ErrorContext(r.Context(), "store error", "method", r.Method, "path", r.URL.Path, "err", err)
	if errors.Is(err, storage.ErrCorrupt) {
		return distspec.Internal.WithMessage("the stored manifest is corrupt (its bytes do not match its digest); kiln fsck --repair quarantines it")
	}
	return distspec.StorageFault(err)
}
