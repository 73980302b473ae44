package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"

	"kiln/auth"
	"kiln/buildhook/build"
	"kiln/config"
	"kiln/ui"
)

// builderUser is the name kiln's own builders log in with; it shadows an
// htpasswd user of the same name.
const builderUser = "kiln-builder"

// security is auth and TLS as runServe uses them.
type security struct {
	tls   *serverTLS          // nil: plain HTTP
	authn *auth.Authenticator // nil: no authentication
	// openWrites lets anyone write without authentication
	// (auth.anonymous: push); otherwise, without authentication, only
	// loopback clients write.
	openWrites bool
	// self is how builders reach kiln: the internal credential (random,
	// made each start, kept in memory only) and trust in its certificate.
	self build.SelfAccess
}

func newSecurity(cfg *config.Config, logger *slog.Logger) (*security, error) {
	return newSecurityWithKey(cfg, logger, nil)
}

// newSecurityWithKey is newSecurity signing tokens with tokenKey (shared
// by a cluster's instances; nil: a key of this instance's own).
func newSecurityWithKey(cfg *config.Config, logger *slog.Logger, tokenKey []byte) (*security, error) {
	s := &security{}
	var err error
	if s.tls, err = loadServerTLS(cfg.HTTP.TLS, logger); err != nil {
		return nil, err
	}
	if s.tls != nil {
		s.self.Transport, s.self.CertDir = s.tls.selfTransport, s.tls.certDir
	}
	if a := cfg.Auth; a.Enabled() {
		cred := auth.InternalCredential(builderUser)
		s.authn, err = auth.New(auth.Options{
			Htpasswd:              a.Htpasswd,
			AnonymousPull:         a.Anonymous == config.AnonymousPull,
			Realm:                 a.Realm,
			FailedLoginsPerMinute: a.FailedLoginsPerMinute,
			Internal:              cred,
			TokenKey:              tokenKey,
			Logger:                logger,
			Pages:                 func(r *http.Request) bool { return ui.Serves(r.URL.Path) },
		})
		if err != nil {
			s.tls.close()
			return nil, err
		}
		s.self.Username, s.self.Password = cred.Username, cred.Password
		logger.Info("authentication on", slog.String("htpasswd", a.Htpasswd), slog.String("anonymous", a.Anonymous))
	} else if a.Anonymous == config.AnonymousPush {
		s.openWrites = true
		logger.Warn("authentication off and auth.anonymous is push: anyone who can reach kiln may push, delete and trigger builds")
	} else {
		logger.Warn("authentication off: anyone may pull, but only loopback clients may push, delete or use /kiln/v1 actions; " +
			"configure auth.htpasswd, or set auth.anonymous: push to open writes to everyone")
	}
	return s, nil
}

// wrap puts authentication, or without it the loopback-only rule for
// writes, in front of h (the registry and /kiln/ APIs; /healthz, /readyz
// and /metrics are answered before it, open).
func (s *security) wrap(h http.Handler) http.Handler {
	switch {
	case s.authn != nil:
		return s.authn.Handler(h)
	case s.openWrites:
		return h
	}
	return auth.LocalWritesOnly(h)
}

func (s *security) serve(srv *http.Server, ln net.Listener) error { return s.tls.serve(srv, ln) }

func (s *security) close() { s.tls.close() }

// apiClient is the HTTP client of the commands that talk to a running
// kiln. It logs in to server with username and $KILN_PASSWORD (never a
// flag: flags show in ps) and trusts the PEM file $KILN_CA_CERT besides the
// system roots.
func apiClient(server, username string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if ca := os.Getenv("KILN_CA_CERT"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("KILN_CA_CERT: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KILN_CA_CERT %s: no PEM certificate", ca)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	c := &http.Client{Transport: tr}
	if username != "" {
		u, err := url.Parse(server)
		if err != nil {
			return nil, fmt.Errorf("--server: %w", err)
		}
		c.Transport = &basicAuth{host: u.Host, user: username, password: os.Getenv("KILN_PASSWORD"), next: tr}
	}
	return c, nil
}

// basicAuth logs in to one host; a redirect elsewhere gets no credentials.
type basicAuth struct {
	host, user, password string
	next                 http.RoundTripper
}

func (b *basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == b.host {
		r = r.Clone(r.Context())
		r.SetBasicAuth(b.user, b.password)
	}
	return b.next.RoundTrip(r)
}
