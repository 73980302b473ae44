package proxy

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
)

// hostPolicy decides where an upstream's requests may go: to its own
// host, and, for redirects and token realms, to the hosts listed in its
// redirect_hosts. A request anywhere else is refused before it is sent,
// so neither the upstream's credentials nor a client ever reach it.
type hostPolicy struct {
	upstream string          // the upstream's name, for errors
	own      string          // its canonical host:port
	ownName  string          // its host name
	secure   bool            // an https upstream is never followed to http
	listed   []string        // redirect_hosts, lower case
	proxies  map[string]bool // HTTP proxies from the environment (host:port), dialed for any target

	// private is whether the upstream itself was last reached on a
	// loopback, private or link-local address: only then may its listed
	// hosts be on one too.
	private atomic.Bool
}

func newHostPolicy(name string, base *url.URL, listed []string) *hostPolicy {
	p := &hostPolicy{upstream: name, own: canonicalHost(base), ownName: strings.ToLower(base.Hostname()),
		secure: base.Scheme == "https", proxies: envProxies()}
	for _, h := range listed {
		p.listed = append(p.listed, strings.ToLower(h))
	}
	return p
}

// canonicalHost is u's host:port, the port explicit.
func canonicalHost(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// allows reports whether a request may be sent to u.
func (p *hostPolicy) allows(u *url.URL) bool {
	if p.secure && u.Scheme != "https" {
		return false
	}
	if canonicalHost(u) == p.own {
		return true
	}
	host := strings.ToLower(u.Hostname())
	for _, h := range p.listed {
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if lh, lp, err := net.SplitHostPort(h); err == nil {
			if canonicalHost(u) == net.JoinHostPort(lh, lp) {
				return true
			}
		} else if host == strings.Trim(h, "[]") {
			return true
		}
	}
	return false
}

// refusedError is a request the host policy did not send.
type refusedError struct {
	upstream, host, why string
}

func (e *refusedError) Error() string {
	return "upstream " + e.upstream + " sent kiln to " + e.host + ", " + e.why
}

// guardedTransport sends only the requests the policy allows: the
// upstream's own, and redirects and token requests to its listed hosts.
type guardedTransport struct {
	policy *hostPolicy
	next   http.RoundTripper
}

func (g guardedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !g.policy.allows(r.URL) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, &refusedError{g.policy.upstream, r.URL.Scheme + "://" + r.URL.Host, "which is neither its own host nor in its redirect_hosts"}
	}
	return g.next.RoundTrip(r)
}

// dialContext dials the upstream's own host (and HTTP proxies) as
// configured; any other host only at an address that is not loopback,
// private or link-local, unless the upstream itself is on one. The check
// is on the address dialed, so a name that resolves elsewhere later
// cannot slip past it.
func (p *hostPolicy) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	guarded := *d
	guarded.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if restricted(ap.Addr()) && !p.private.Load() {
			return &refusedError{p.upstream, address, "a loopback, private or link-local address, and the upstream is not on one"}
		}
		return nil
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		host = strings.ToLower(host)
		if host != p.ownName && !p.proxies[strings.ToLower(addr)] {
			return guarded.DialContext(ctx, network, addr)
		}
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil && host == p.ownName {
			if ap, perr := netip.ParseAddrPort(conn.RemoteAddr().String()); perr == nil {
				p.private.Store(restricted(ap.Addr()))
			}
		}
		return conn, err
	}
}

// restricted reports whether a is an address an upstream's redirect must
// not lead to: the host itself, its networks, or cloud metadata services.
func restricted(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsUnspecified()
}

// envProxies lists the HTTP proxies the environment configures, which
// the upstream transports dial whatever the target.
func envProxies() map[string]bool {
	m := map[string]bool{}
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		v := os.Getenv(k)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			if u, err = url.Parse("http://" + v); err != nil || u.Host == "" {
				continue
			}
		}
		m[canonicalHost(u)] = true
	}
	return m
}
