package auth

import (
	"net/http"

	"kiln/auth/identity"
	"kiln/distspec"
)

// localWritesOnly is the answer to a write from another host while
// authentication is off.
var localWritesOnly = distspec.Denied.WithMessage("authentication is not configured, so only clients on this host may push, " +
	"delete or use /kiln/v1 actions; configure auth.htpasswd, or set auth.anonymous: push for a registry open to everyone")

// LocalWritesOnly serves reads (GET, HEAD) from anyone and everything else
// only from loopback peers: kiln's default until authentication is
// configured. The peer is the TCP one, never a forwarding header.
func LocalWritesOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !identity.FromLoopback(r) {
			refuseBody(w)
			distspec.WriteError(w, localWritesOnly)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// refuseBody closes the connection after an answer given without reading
// the request's body, which net/http would otherwise read up to 256 KiB
// of, to keep the connection.
func refuseBody(w http.ResponseWriter) { w.Header().Set("Connection", "close") }
