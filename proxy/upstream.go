package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"kiln/config"
)

// upstream is one configured upstream registry and its HTTP clients.
type upstream struct {
	cfg      config.Upstream
	base     *url.URL
	registry name.Registry
	auth     authn.Authenticator
	inner    http.RoundTripper
	requests *atomic.Int64 // shared counter of upstream requests

	policy     *hostPolicy     // where its requests may go
	mu         sync.Mutex      // held while a transport is made
	transports *transportCache // per upstream repository (token scope)

	health health // whether it answered lately
}

func newUpstream(c config.Upstream, requests *atomic.Int64, log *slog.Logger) (*upstream, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, err
	}
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, opts...)
	if err != nil {
		return nil, err
	}
	auth := authn.Anonymous
	if c.Username != "" {
		auth = &authn.Basic{Username: c.Username, Password: c.Password}
	}
	policy := newHostPolicy(c.Name, u, c.RedirectHosts)
	inner := http.DefaultTransport.(*http.Transport).Clone()
	// A slow upstream counts as down after the timeout, so the cache
	// answers; a blob body may then take as long as it needs.
	inner.ResponseHeaderTimeout = c.Timeout
	inner.DialContext = policy.dialContext(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	return &upstream{cfg: c, base: u, registry: reg, auth: auth, inner: guardedTransport{policy, inner}, requests: requests,
		policy: policy, transports: newTransportCache(maxTransports),
		health: health{name: c.Name, window: downWindow(c.Timeout), log: log, now: time.Now}}, nil
}

// transport returns the authenticating transport for repo: ggcr's, which
// answers the WWW-Authenticate challenge (bearer tokens, basic auth).
func (u *upstream) transport(ctx context.Context, repo string) (http.RoundTripper, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.transports.get(repo); ok {
		return t, nil
	}
	scope := u.registry.Repo(repo).Scope(transport.PullScope)
	t, err := transport.NewWithContext(ctx, u.registry, u.auth, countingTransport{u.inner, u.requests}, []string{scope})
	if err != nil {
		if refused(err) {
			return nil, err // the upstream answers, where kiln does not go
		}
		derr := u.down(err)
		u.health.down(derr)
		return nil, derr
	}
	u.transports.put(repo, t)
	return t, nil
}

// refused reports whether err is a request the host policy did not send.
func refused(err error) bool {
	var r *refusedError
	return errors.As(err, &r)
}

// countingTransport counts every request sent upstream (tests and metrics).
type countingTransport struct {
	inner http.RoundTripper
	n     *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.inner.RoundTrip(r)
}

// downError means the upstream could not answer: unreachable, too slow,
// rate limited or failing (429/5xx). The cache answers instead, if it can.
type downError struct {
	upstream string // its name
	url      string // as configured
	err      error
}

// down wraps err as the upstream being unavailable.
func (u *upstream) down(err error) *downError {
	return &downError{upstream: u.cfg.Name, url: u.cfg.URL, err: err}
}

// Error names the upstream's configured URL and the cause. The client
// library's own text lists every URL it tried, https:// first even for an
// http:// upstream, which misleads whoever reads it.
func (e *downError) Error() string {
	return "upstream " + e.upstream + " (" + e.url + ") unavailable: " + requestCause(e.err, e.url)
}
func (e *downError) Unwrap() error { return e.err }

func isDown(err error) bool {
	var d *downError
	return errors.As(err, &d)
}

// errNotFound is an upstream 404.
var errNotFound = errors.New("not found upstream")

// do sends method path (relative to /v2/<repo>/) upstream and returns the
// response when it is 2xx. Bodies of other answers are closed.
func (u *upstream) do(ctx context.Context, method, repo, path string, header http.Header) (*http.Response, error) {
	t, err := u.transport(ctx, repo)
	if err != nil {
		return nil, err
	}
	target := *u.base
	target.Path = strings.TrimSuffix(u.base.Path, "/") + "/v2/" + repo + "/" + path
	req, err := http.NewRequestWithContext(ctx, method, target.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		if ctx.Err() != nil && context.Cause(ctx) == context.Canceled || refused(err) {
			// The caller gave up, or the upstream sent kiln where it does
			// not go: not an outage.
			return nil, err
		}
		err = u.down(err)
		u.health.down(err)
		return nil, err
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		u.health.down(fmt.Errorf("%s %s: %s", method, target.Path, resp.Status))
	} else {
		u.health.up()
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp, nil
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, errNotFound
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		resp.Body.Close()
		return nil, u.down(fmt.Errorf("%s %s: %s", method, target.Path, resp.Status))
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, fmt.Errorf("upstream %s: %s %s: %s: %s", u.cfg.Name, method, target.Path, resp.Status, strings.TrimSpace(string(b)))
	}
}

// withTimeout bounds a request that must answer quickly (manifests, HEADs).
func (u *upstream) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, u.cfg.Timeout+time.Second)
}
