package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"kiln/auth/identity"
	"kiln/distspec"
)

// login checks a user's password. Failures count against the client's
// address, reserved before the check so that concurrent attempts cannot
// exceed the allowance. When it returns false it has answered the request
// (401 or 429).
func (a *Authenticator) login(w http.ResponseWriter, r *http.Request, user, password string) bool {
	addr := identity.PeerAddr(r)
	ok, refused, wait := a.check(r.Context(), addr, user, password)
	if refused != nil {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		distspec.WriteError(w, refused)
		return false
	}
	if !ok {
		// The name is left out too: people type passwords into it.
		a.opts.Logger.Warn("login failed", slog.String("remote", addr))
		w.Header().Set("WWW-Authenticate", a.basicChallenge)
		distspec.WriteError(w, distspec.Unauthorized.WithMessage("invalid username or password"))
		return false
	}
	return true
}

// check reports whether password is user's. refused, when not nil, is
// the 429 of a password not checked, and wait how long to wait.
func (a *Authenticator) check(ctx context.Context, addr, user, password string) (ok bool, refused *distspec.Error, wait time.Duration) {
	internal := a.opts.Internal.Username != "" && user == a.opts.Internal.Username
	hash, known := []byte(nil), false
	if !internal {
		u := a.file.users()
		hash, known = u.hashes[user]
		if !known {
			hash = u.dummy()
		}
	}
	// A password bcrypt accepted recently needs neither the limiter nor
	// a check slot: knowing it is what the limiter guards.
	key := cacheKey(user, password, hash)
	if known && a.cache.has(key) {
		return true, nil, 0
	}
	b, wait := a.limiter.reserve(addr)
	if b == nil {
		return false, distspec.TooManyRequests.WithMessage("too many failed logins from this address; retry later"), wait
	}
	if internal {
		got, want := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(a.opts.Internal.Password))
		ok = subtle.ConstantTimeCompare(got[:], want[:]) == 1
		a.limiter.settle(b, !ok)
		return ok, nil, 0
	}
	if !a.takeCheckSlot(ctx) {
		a.limiter.settle(b, false) // not checked: not a failure
		return false, distspec.TooManyRequests.WithMessage("too many logins being checked; retry later"), time.Second
	}
	// Unknown users are checked against the dummy hash, which has the
	// cost of the file's costliest entry, and always fail.
	ok = a.compare(hash, []byte(password)) == nil && known
	<-a.checks
	a.limiter.settle(b, !ok)
	if ok {
		a.cache.add(key)
	}
	return ok, nil, 0
}

// takeCheckSlot waits up to checkWait for one of the password check
// slots; the caller gives it back by receiving from a.checks.
func (a *Authenticator) takeCheckSlot(ctx context.Context) bool {
	select {
	case a.checks <- struct{}{}:
		return true
	default:
	}
	if a.checkWait <= 0 {
		return false
	}
	t := time.NewTimer(a.checkWait)
	defer t.Stop()
	select {
	case a.checks <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// fingerprint identifies user's current entry; ok is false when there is
// none (the user was removed).
func (a *Authenticator) fingerprint(user string) (fp string, ok bool) {
	if in := a.opts.Internal; in.Username != "" && user == in.Username {
		return a.tokens.fingerprint(user, []byte(in.Password)), true
	}
	hash, ok := a.file.users().hashes[user]
	if !ok {
		return "", false
	}
	return a.tokens.fingerprint(user, hash), true
}

// errRevoked is a token whose user was removed or changed password since.
var errRevoked = errors.New("token revoked: its user was removed or changed password; log in again")

// verifyToken returns the user of a valid token whose user still has the
// entry it was issued for.
func (a *Authenticator) verifyToken(token string) (string, error) {
	c, err := a.tokens.verify(token)
	if err != nil || c.User == "" {
		return c.User, err
	}
	if fp, ok := a.fingerprint(c.User); !ok || subtle.ConstantTimeCompare([]byte(fp), []byte(c.Fingerprint)) != 1 {
		return "", errRevoked
	}
	return c.User, nil
}
