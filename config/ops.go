package config

// TLS names the PEM files kiln serves HTTPS with; both empty means plain HTTP.
type TLS struct {
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
}

// Enabled reports whether HTTPS is configured.
func (t TLS) Enabled() bool { return t.Certificate != "" || t.Key != "" }

// Anonymous access levels.
const (
	// AnonymousNone: with auth.htpasswd every request logs in; without
	// it, anyone reads but only clients on this host (loopback) write.
	AnonymousNone = "none"
	// AnonymousPull: with auth.htpasswd, reads need no login.
	AnonymousPull = "pull"
	// AnonymousPush: without auth.htpasswd, anyone may push, delete and
	// use /kiln/v1 actions: a registry deliberately open to everyone.
	AnonymousPush = "push"
)

// Auth configures who may use kiln.
type Auth struct {
	Htpasswd              string `yaml:"htpasswd"`  // bcrypt htpasswd file; "" turns authentication off
	Anonymous             string `yaml:"anonymous"` // none | pull | push
	Realm                 string `yaml:"realm"`
	FailedLoginsPerMinute int    `yaml:"failed_logins_per_minute"`
}

// Enabled reports whether requests must authenticate.
func (a Auth) Enabled() bool { return a.Htpasswd != "" }

// Limits bounds what one client can make kiln hold.
type Limits struct {
	MaxBlobSize          int64 `yaml:"max_blob_size"` // 0: no limit
	MaxManifestSize      int64 `yaml:"max_manifest_size"`
	MaxConcurrentUploads int   `yaml:"max_concurrent_uploads"`
}

func (c *Config) validateOps(bad func(key, format string, args ...any)) {
	h := c.HTTP
	positive(bad, "http.read_header_timeout", h.ReadHeaderTimeout)
	positive(bad, "http.idle_timeout", h.IdleTimeout)
	positive(bad, "http.stall_timeout", h.StallTimeout)
	if h.TLS.Enabled() && (h.TLS.Certificate == "" || h.TLS.Key == "") {
		bad("http.tls", "certificate and key must both be set")
	}

	a := c.Auth
	switch a.Anonymous {
	case AnonymousNone:
	case AnonymousPull:
		if !a.Enabled() {
			bad("auth.anonymous", "pull needs auth.htpasswd: without it every request is anonymous already")
		}
	case AnonymousPush:
		if a.Enabled() {
			bad("auth.anonymous", "push opens writes to everyone and is for a registry without auth.htpasswd; with it, use none or pull")
		}
	default:
		bad("auth.anonymous", "unknown value %q (want none, pull or push)", a.Anonymous)
	}
	if a.Realm == "" {
		bad("auth.realm", "must not be empty")
	}
	if a.FailedLoginsPerMinute <= 0 {
		bad("auth.failed_logins_per_minute", "must be positive, got %d", a.FailedLoginsPerMinute)
	}

	l := c.Limits
	if l.MaxBlobSize < 0 {
		bad("limits.max_blob_size", "must not be negative (0 means no limit)")
	}
	if l.MaxManifestSize <= 0 {
		bad("limits.max_manifest_size", "must be positive, got %d", l.MaxManifestSize)
	}
	if l.MaxConcurrentUploads <= 0 {
		bad("limits.max_concurrent_uploads", "must be positive, got %d", l.MaxConcurrentUploads)
	}
}
