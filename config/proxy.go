package config

import (
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// Upstream is a registry kiln mirrors: pulls of <name>/<repo> (and, for the
// upstream named docker.io, of un-prefixed names, as a Docker daemon's
// registry-mirrors sends them) are served from it and cached.
type Upstream struct {
	Name     string `yaml:"name"` // the prefix clients use, e.g. docker.io
	URL      string `yaml:"url"`  // e.g. https://registry-1.docker.io
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordFile and PasswordEnv name a file (a mounted secret) or an
	// environment variable holding the password instead; see secrets.go.
	PasswordFile  string        `yaml:"password_file"`
	PasswordEnv   string        `yaml:"password_env"`
	TTL           time.Duration `yaml:"ttl"`            // how long a cached tag is trusted; default 1h
	Timeout       time.Duration `yaml:"timeout"`        // per upstream request before falling back to the cache; default 30s
	WatchInterval time.Duration `yaml:"watch_interval"` // how often watched tags are polled; default 5m
	// RedirectHosts are the hosts besides the upstream's own that its
	// redirects and token realms may lead to: "host", "host:port" or
	// "*.domain". Nothing else is followed, and no credential goes there.
	RedirectHosts []string `yaml:"redirect_hosts"`
}

var (
	upstreamNameRegexp = regexp.MustCompile(`^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?$`)
	redirectHostRegexp = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]+([.-][A-Za-z0-9]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?$`)
)

// knownRedirectHosts are where well-known registries send token requests
// and blob downloads: the redirect_hosts of an upstream at that host that
// lists none.
var knownRedirectHosts = map[string][]string{
	"registry-1.docker.io": {"auth.docker.io", "production.cloudflare.docker.com"},
	"ghcr.io":              {"pkg-containers.githubusercontent.com"},
}

func (c *Config) applyProxyDefaults() {
	for i := range c.Proxy {
		u := &c.Proxy[i]
		if u.TTL == 0 {
			u.TTL = time.Hour
		}
		if u.Timeout == 0 {
			u.Timeout = 30 * time.Second
		}
		if u.WatchInterval == 0 {
			u.WatchInterval = 5 * time.Minute
		}
		if pu, err := url.Parse(u.URL); err == nil && u.RedirectHosts == nil {
			u.RedirectHosts = knownRedirectHosts[pu.Hostname()]
		}
	}
}

func (c *Config) validateProxy(bad func(key, format string, args ...any)) {
	seen := map[string]bool{}
	for i, u := range c.Proxy {
		key := fmt.Sprintf("proxy[%d]", i)
		if !upstreamNameRegexp.MatchString(u.Name) {
			bad(key+".name", "%q is not a registry host name such as docker.io", u.Name)
		} else if seen[u.Name] {
			bad(key+".name", "%q is used by another upstream", u.Name)
		}
		seen[u.Name] = true
		if pu, err := url.Parse(u.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad(key+".url", "%q is not an http(s) URL", u.URL)
		}
		if u.TTL < 0 || u.Timeout < 0 || u.WatchInterval < 0 {
			bad(key, "durations must not be negative")
		}
		for j, h := range u.RedirectHosts {
			if !redirectHostRegexp.MatchString(h) {
				bad(fmt.Sprintf("%s.redirect_hosts[%d]", key, j), "%q is not a host, host:port or *.domain", h)
			}
		}
	}
}
