// Package auth is the HTTP middleware that admits htpasswd users and kiln's own builders (Basic, or bearer tokens when anonymous pull is on), lets anonymous clients pull when configured, and rate-limits failed logins; without an htpasswd file, LocalWritesOnly keeps writes to clients on this host.
package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"kiln/auth/identity"
	"kiln/distspec"
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
	// TokenKey signs bearer tokens; instances given the same key accept
	// each other's. Nil: a random key made by New, so tokens hold on this
	// instance only, until it restarts.
	TokenKey []byte
	// Pages reports whether a request is for a web page: its GET and HEAD
	// count as pulls, and it is challenged for Basic credentials, the
	// only kind a browser can give. Nil: there are no pages.
	Pages func(r *http.Request) bool
}

// Authenticator checks requests against Options.
type Authenticator struct {
	opts           Options
	file           *htpasswdFile
	limiter        *failureLimiter
	cache          *verifiedCache
	basicChallenge string
	tokens         *tokenSigner
	// checks bounds the password checks (bcrypt) running at once, so that
	// logins cannot take all the CPU; a check waits at most checkWait for
	// a slot, then gets 429.
	checks    chan struct{}
	checkWait time.Duration
	// compare is bcrypt's check; tests count its calls.
	compare func(hash, password []byte) error
}

// checkWait is how long a password check waits for a slot: a burst of
// logins is spread out rather than refused.
const checkWait = time.Second

// checkSlots is how many password checks run at once: half the CPUs, so
// that the rest keeps serving.
func checkSlots() int { return max(1, runtime.GOMAXPROCS(0)/2) }

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
		tokens:         newTokenSigner(opts.TokenKey),
		checks:         make(chan struct{}, checkSlots()),
		checkWait:      checkWait,
		compare:        bcrypt.CompareHashAndPassword,
	}
	var err error
	a.file, err = openHtpasswd(opts.Htpasswd, opts.Logger, a.cache.flush)
	if err != nil {
		return nil, fmt.Errorf("auth.htpasswd: %w", err)
	}
	return a, nil
}

// User returns the authenticated user of the request ctx belongs to, ""
// for an anonymous one.
func User(ctx context.Context) string { return identity.User(ctx) }

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
			if !a.opts.AnonymousPull || !isPull(r) && !a.isPageRead(r) || ping && r.Header.Get("Authorization") == "" {
				a.deny(w, r, distspec.Unauthorized)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(identity.WithUser(r.Context(), user)))
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
		// containers/image (skopeo, podman, buildah, CRI-O) answers a
		// challenge with empty credentials when it has none: that is an
		// anonymous request, never a failed login.
		if user == "" && password == "" {
			return "", true
		}
		return user, a.login(w, r, user, password)
	}
	if token, bearer := strings.CutPrefix(authz, "Bearer "); bearer && a.opts.AnonymousPull {
		user, err := a.verifyToken(token)
		if err != nil {
			a.deny(w, r, distspec.Unauthorized.WithMessage(err.Error()))
			return "", false
		}
		return user, true
	}
	a.deny(w, r, distspec.Unauthorized.WithMessage("unsupported authorization scheme"))
	return "", false
}

// deny answers 401 with the challenge clients should follow: Basic, or
// with anonymous pull a Bearer challenge naming the token service.
func (a *Authenticator) deny(w http.ResponseWriter, r *http.Request, e *distspec.Error) {
	challenge := a.basicChallenge
	if a.opts.AnonymousPull && !a.isPage(r) {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		challenge = fmt.Sprintf("Bearer realm=%q,service=%q", scheme+"://"+r.Host+TokenPath, a.opts.Realm)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	distspec.WriteError(w, e)
}

func (a *Authenticator) isPage(r *http.Request) bool { return a.opts.Pages != nil && a.opts.Pages(r) }

// isPageRead reports whether r only reads a web page.
func (a *Authenticator) isPageRead(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && a.isPage(r)
}

// isPull reports whether r only reads the registry API.
func isPull(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/v2" || strings.HasPrefix(r.URL.Path, "/v2/")
}
