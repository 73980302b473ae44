package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
)

// Registry calls shared by the builders that talk to kiln over HTTP
// (native, rebase): how a builder reaches this registry.

// Remote is how one build reaches registries: the options of its
// go-containerregistry calls, and a client of kiln itself.
type Remote struct {
	// Options are the options of every remote call of the build: keychain
	// and transport only when set, so that nil keeps go-containerregistry's
	// defaults. Calls to kiln itself carry job.Self (see selfTransport).
	//
	// Every call made with them shares one Puller and one Pusher: a
	// registry is pinged, and a token fetched, once per repository for all
	// of them, where each remote call would otherwise ping again (https
	// first, then http for kiln on loopback) before its first request.
	Options []remote.Option

	ctx    context.Context
	client *http.Client // to kiln, with job.Self
	scheme string       // kiln's
}

// NewRemote returns the registry access of one build of job: a builder
// makes it once per build.
func NewRemote(ctx context.Context, job *Job, keychain authn.Keychain, tr http.RoundTripper) *Remote {
	var opts []remote.Option
	if keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(keychain))
	}
	// kiln serves plain HTTP when it gave builders no transport that
	// trusts its certificate: go-containerregistry's https ping of it would
	// only cost a connection and a failed handshake per ping.
	plain := tr == nil && job.Self.Transport == nil && job.Registry != ""
	if tr == nil {
		tr = remote.DefaultTransport
	}
	self := &selfTransport{host: job.Registry, self: job.Self, plain: plain, next: tr}
	if job.Self.Username != "" || job.Self.Transport != nil || plain {
		tr = self
	}
	opts = append(opts, remote.WithTransport(tr))
	r := &Remote{ctx: ctx, client: &http.Client{Transport: self}, scheme: "http"}
	if job.Self.Transport != nil {
		r.scheme = "https"
	}
	// Neither fails: they only fail on options that fail, and these do not.
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		r.Options = append(opts, remote.WithContext(ctx))
		return r
	}
	pusher, err := remote.NewPusher(opts...)
	if err != nil {
		r.Options = append(opts, remote.WithContext(ctx))
		return r
	}
	r.Options = append(opts, remote.WithContext(ctx), remote.Reuse(puller), remote.Reuse(pusher))
	return r
}

// RemoteOptions are the Options of NewRemote.
func RemoteOptions(ctx context.Context, job *Job, keychain authn.Keychain, tr http.RoundTripper) []remote.Option {
	return NewRemote(ctx, job, keychain, tr).Options
}

// selfTransport sends kiln's own builder credential with every request to
// kiln (host), unasked: with anonymous pull kiln's /v2/ answers 200, so a
// client waiting for a challenge would never log in. It uses self's
// transport there, which trusts kiln's certificate. Requests to any other
// host (upstreams, blob redirects) go to next untouched.
type selfTransport struct {
	host string
	self SelfAccess
	// plain: kiln serves plain HTTP, and an https request to it fails at
	// once (the ping then tries http without waiting).
	plain bool
	next  http.RoundTripper
}

// errPlainSelf answers an https request to kiln when it serves plain HTTP.
var errPlainSelf = errors.New("kiln serves plain HTTP to its builders")

func (t *selfTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != t.host {
		return t.next.RoundTrip(r)
	}
	if t.plain && r.URL.Scheme == "https" {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errPlainSelf
	}
	if t.self.Username != "" {
		r = r.Clone(r.Context())
		r.SetBasicAuth(t.self.Username, t.self.Password)
	}
	if t.self.Transport != nil {
		return t.self.Transport.RoundTrip(r)
	}
	return t.next.RoundTrip(r)
}

// StagingTag is job.Staging on this registry. name.Insecure allows plain
// HTTP; go-containerregistry still tries HTTPS first.
func StagingTag(job *Job) (name.Tag, error) {
	return name.NewTag(job.Registry+"/"+job.Staging.String(), name.Insecure)
}

// PushImage pushes img to staging and returns its digest.
func (r *Remote) PushImage(log io.Writer, staging name.Tag, img v1.Image) (digest.Digest, error) {
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	// Every blob there, one request puts the manifest; else (a large new
	// layer, a failed preload) go-containerregistry pushes what is left.
	if r.preloadBlobs(staging.Context(), []v1.Image{img}) && r.PutManifest(staging, img) == nil {
		fmt.Fprintf(log, "pushed %s@%s\n", staging, d)
		return digest.Digest(d.String()), nil
	}
	if err := remote.Write(staging, img, r.Options...); err != nil {
		return "", RegistryTransient(fmt.Errorf("pushing %s: %w", staging, err))
	}
	fmt.Fprintf(log, "pushed %s@%s\n", staging, d)
	return digest.Digest(d.String()), nil
}

// PushIndex pushes idx, of platforms images, to staging and returns its
// digest.
func (r *Remote) PushIndex(log io.Writer, staging name.Tag, idx v1.ImageIndex, platforms int) (digest.Digest, error) {
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	if imgs, err := imagesOf(idx); err == nil {
		r.preloadBlobs(staging.Context(), imgs)
	}
	if err := remote.WriteIndex(staging, idx, r.Options...); err != nil {
		return "", RegistryTransient(fmt.Errorf("pushing %s: %w", staging, err))
	}
	fmt.Fprintf(log, "pushed %s@%s (index of %d platforms)\n", staging, d, platforms)
	return digest.Digest(d.String()), nil
}

// RegistryTransient marks a registry failure as worth retrying (see
// IsTransient), unless the registry answered that the request itself is
// wrong (4xx but timeouts and rate limits) or the build was cancelled.
func RegistryTransient(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode >= 400 && te.StatusCode < 500 &&
		te.StatusCode != http.StatusRequestTimeout && te.StatusCode != http.StatusTooManyRequests {
		return err
	}
	return Transient(err)
}

// IsNotFound reports a registry's 404 or *_UNKNOWN answer.
func IsNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode || d.Code == transport.BlobUnknownErrorCode {
			return true
		}
	}
	return false
}
