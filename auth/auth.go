// Package auth is the HTTP middleware that admits htpasswd users and kiln's own builders (Basic, or bearer tokens when anonymous pull is on), lets anonymous clients pull when configured, and rate-limits failed logins.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"kiln/registry/errcode"
)

// Credential is a user name and password.
type Credential struct {
	Username string
	Password string
}

// InternalCredential makes the credential kiln's own builders push with:
// a fresh random password each start, kept only in memory.
func InternalCredential(username string) Credential {
	return Credential{Username: username, Password: rand.Text() + rand.Text()}
}

// Options configure an Authenticator.
type Options struct {
	Htpasswd              string // bcrypt htpasswd file
	AnonymousPull         bool   // GET and HEAD under /v2/ need no login; challenges become Bearer (see token.go)
	Realm                 string // sent in the Basic challenge
	FailedLoginsPerMinute int    // per client address; more get 429
	// Internal is accepted besides the file's users; its name shadows a
	// file user of the same name. Zero means none.
	Internal Credential
	Logger   *slog.Logger
}

// Authenticator checks requests against Options.
type Authenticator struct {
	opts           Options
	file           *htpasswdFile
	limiter        *failureLimiter
	cache          *verifiedCache
	basicChallenge string
	tokens         *tokenSigner
	// dummyHash is compared against for unknown users so that a wrong
	// name costs as much time as a wrong password. Made on first use:
	// bcrypt at the default cost is slow.
	dummyHash func() []byte
	// compare is bcrypt's check; tests count its calls.
	compare func(hash, password []byte) error
}

// New loads the htpasswd file; a file that cannot be read or parsed is an
// error.
func New(opts Options) (*Authenticator, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FailedLoginsPerMinute <= 0 {
		return nil, errors.New("auth: failed logins per minute must be positive")
	}
	a := &Authenticator{
		opts:           opts,
		limiter:        newFailureLimiter(opts.FailedLoginsPerMinute),
		cache:          newVerifiedCache(),
		basicChallenge: fmt.Sprintf("Basic realm=%q", opts.Realm),
		tokens:         newTokenSigner(),
		dummyHash: sync.OnceValue(func() []byte {
			h, _ := bcrypt.GenerateFromPassword([]byte(rand.Text()), bcrypt.DefaultCost)
			return h
		}),
		compare: bcrypt.CompareHashAndPassword,
	}
	var err error
	a.file, err = openHtpasswd(opts.Htpasswd, opts.Logger, a.cache.flush)
	if err != nil {
		return nil, fmt.Errorf("auth.htpasswd: %w", err)
	}
	return a, nil
}

type userKey struct{}

// User returns the authenticated user of the request ctx belongs to, ""
// for an anonymous one.
func User(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// Handler admits a request to next when it carries valid credentials
// (Basic, or with anonymous pull a bearer token from TokenPath), or, with
// anonymous pull, when it only reads under /v2/. Credentials, when
// present, are always checked.
func (a *Authenticator) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.AnonymousPull && r.URL.Path == TokenPath {
			a.serveToken(w, r)
			return
		}
		user, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		if user == "" {
			// The bare ping GET /v2/ is refused so that clients learn of
			// the token service; an anonymous token may ping.
			ping := r.URL.Path == "/v2/" || r.URL.Path == "/v2"
			if !a.opts.AnonymousPull || !isPull(r) || ping && r.Header.Get("Authorization") == "" {
				a.deny(w, r, errcode.Unauthorized)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
	})
}

// authenticate returns the request's user, "" for an anonymous request.
// When ok is false it has answered the request (401 or 429).
func (a *Authenticator) authenticate(w http.ResponseWriter, r *http.Request) (user string, ok bool) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return "", true
	}
	if user, password, basic := r.BasicAuth(); basic {
		// containers/image answers a challenge with empty credentials
		// when it has none: that is an anonymous request.
		if user == "" && password == "" && a.opts.AnonymousPull {
			return "", true
		}
		return user, a.login(w, r, user, password)
	}
	if token, bearer := strings.CutPrefix(authz, "Bearer "); bearer && a.opts.AnonymousPull {
		user, err := a.tokens.verify(token)
		if err != nil {
			a.deny(w, r, errcode.Unauthorized.WithMessage(err.Error()))
			return "", false
		}
		return user, true
	}
	a.deny(w, r, errcode.Unauthorized.WithMessage("unsupported authorization scheme"))
	return "", false
}

// login checks a user's password, counting failures against the client's
// address. When it returns false it has answered the request.
func (a *Authenticator) login(w http.ResponseWriter, r *http.Request, user, password string) bool {
	addr := clientAddr(r)
	if blocked, wait := a.limiter.blocked(addr); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		errcode.Write(w, errcode.TooManyRequests.WithMessage("too many failed logins from this address; retry later"))
		return false
	}
	if !a.verify(user, password) {
		a.limiter.failed(addr)
		// The name is left out too: people type passwords into it.
		a.opts.Logger.Warn("login failed", slog.String("remote", addr))
		w.Header().Set("WWW-Authenticate", a.basicChallenge)
		errcode.Write(w, errcode.Unauthorized.WithMessage("invalid username or password"))
		return false
	}
	return true
}

// serveToken answers a token request (the distribution token protocol,
// GET only): with a valid Basic login a token for that user, without one
// an anonymous token, which only reads.
func (a *Authenticator) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		errcode.Write(w, errcode.Unsupported.WithMessage("use GET"))
		return
	}
	user := ""
	if r.Header.Get("Authorization") != "" {
		u, password, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", a.basicChallenge)
			errcode.Write(w, errcode.Unauthorized.WithMessage("the token service takes Basic credentials"))
			return
		}
		if u != "" || password != "" {
			if !a.login(w, r, u, password) {
				return
			}
			user = u
		}
	}
	token, exp := a.tokens.issue(user)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   int(tokenTTL.Seconds()),
		"issued_at":    exp.Add(-tokenTTL).UTC().Format(time.RFC3339),
	})
}

// deny answers 401 with the challenge clients should follow: Basic, or
// with anonymous pull a Bearer challenge naming the token service.
func (a *Authenticator) deny(w http.ResponseWriter, r *http.Request, e *errcode.Error) {
	challenge := a.basicChallenge
	if a.opts.AnonymousPull {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		challenge = fmt.Sprintf("Bearer realm=%q,service=%q", scheme+"://"+r.Host+TokenPath, a.opts.Realm)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	errcode.Write(w, e)
}

// verify checks a user's password: the internal credential by constant
// time comparison, file users by bcrypt behind the cache.
func (a *Authenticator) verify(user, password string) bool {
	if in := a.opts.Internal; in.Username != "" && user == in.Username {
		got, want := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(in.Password))
		return subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	hash, known := a.file.users()[user]
	if !known {
		a.compare(a.dummyHash(), []byte(password))
		return false
	}
	k := cacheKey(user, password, hash)
	if a.cache.has(k) {
		return true
	}
	if a.compare(hash, []byte(password)) != nil {
		return false
	}
	a.cache.add(k)
	return true
}

// isPull reports whether r only reads the registry API.
func isPull(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/")
}

// clientAddr is the peer's IP: failures are counted per address, not per
// connection. X-Forwarded-For is not trusted: any client could set it.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
