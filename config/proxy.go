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
	Name          string        `yaml:"name"` // the prefix clients use, e.g. docker.io
	URL           string        `yaml:"url"`  // e.g. https://registry-1.docker.io
	Username      string        `yaml:"username"`
	Password      string        `yaml:"password"`
	TTL           time.Duration `yaml:"ttl"`            // how long a cached tag is trusted; default 1h
	Timeout       time.Duration `yaml:"timeout"`        // per upstream request before falling back to the cache; default 30s
	WatchInterval time.Duration `yaml:"watch_interval"` // how often watched tags are polled; default 5m
}

var upstreamNameRegexp = regexp.MustCompile(`^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?$`)

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
	}
}
