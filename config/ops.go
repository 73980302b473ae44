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
	AnonymousNone = "none"
	AnonymousPull = "pull"
)

// Auth configures who may use kiln.
type Auth struct {
	Htpasswd              string `yaml:"htpasswd"`  // bcrypt htpasswd file; "" turns authentication off
	Anonymous             string `yaml:"anonymous"` // none | pull
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
	if a.Anonymous != AnonymousNone && a.Anonymous != AnonymousPull {
		bad("auth.anonymous", "unknown value %q (want none or pull)", a.Anonymous)
	}
	if a.Anonymous == AnonymousPull && !a.Enabled() {
		bad("auth.anonymous", "pull needs auth.htpasswd: without it every request is anonymous already")
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
