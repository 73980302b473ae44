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

// RemoteOptions are the options of one build's registry calls: keychain
// and transport only when set, so that nil keeps go-containerregistry's
// defaults. Calls to kiln itself carry job.Self (see selfTransport).
func RemoteOptions(ctx context.Context, job *Job, keychain authn.Keychain, tr http.RoundTripper) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(keychain))
	}
	if s := job.Self; s.Username != "" || s.Transport != nil {
		if tr == nil {
			tr = remote.DefaultTransport
		}
		tr = &selfTransport{host: job.Registry, self: s, next: tr}
	}
	if tr != nil {
		opts = append(opts, remote.WithTransport(tr))
	}
	return opts
}

// selfTransport sends kiln's own builder credential with every request to
// kiln (host), unasked: with anonymous pull kiln's /v2/ answers 200, so a
// client waiting for a challenge would never log in. It uses self's
// transport there, which trusts kiln's certificate. Requests to any other
// host (upstreams, blob redirects) go to next untouched.
type selfTransport struct {
	host string
	self SelfAccess
	next http.RoundTripper
}

func (t *selfTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != t.host {
		return t.next.RoundTrip(r)
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
func PushImage(log io.Writer, staging name.Tag, img v1.Image, opts []remote.Option) (digest.Digest, error) {
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	if err := remote.Write(staging, img, opts...); err != nil {
		return "", RegistryTransient(fmt.Errorf("pushing %s: %w", staging, err))
	}
	fmt.Fprintf(log, "pushed %s@%s\n", staging, d)
	return digest.Digest(d.String()), nil
}

// PushIndex pushes idx, of platforms images, to staging and returns its
// digest.
func PushIndex(log io.Writer, staging name.Tag, idx v1.ImageIndex, platforms int, opts []remote.Option) (digest.Digest, error) {
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(staging, idx, opts...); err != nil {
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
