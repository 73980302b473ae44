// Package identity says who sent a request: the user authentication
// admitted, else the TCP peer's address. It is apart from auth so that
// the handlers behind auth (upload slots) can read it without importing
// the middleware.
package identity

import (
	"context"
	"net"
	"net/http"
)

type userKey struct{}

// WithUser returns ctx carrying the authenticated user.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// User returns the authenticated user of ctx's request, "" for an
// anonymous one.
func User(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// PeerAddr is the IP of the request's TCP peer. X-Forwarded-For is not
// consulted: any client can set it.
func PeerAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// FromLoopback reports whether the request's TCP peer is on this host's
// loopback interface (127.0.0.0/8 or ::1).
func FromLoopback(r *http.Request) bool {
	ip := net.ParseIP(PeerAddr(r))
	return ip != nil && ip.IsLoopback()
}

// Client names whom r is accounted to: its user, or its peer address when
// anonymous. The two kinds never collide.
func Client(r *http.Request) string {
	if u := User(r.Context()); u != "" {
		return "user " + u
	}
	return "address " + PeerAddr(r)
}
