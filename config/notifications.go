package config

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Notifications configures the webhooks kiln sends its events to.
type Notifications struct {
	// Defaults for every endpoint that does not set its own.
	Timeout    time.Duration `yaml:"timeout"`
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	Endpoints  []Endpoint    `yaml:"endpoints"`
}

// Endpoint is one webhook.
type Endpoint struct {
	// Name labels its metrics and logs (default: its index).
	Name    string            `yaml:"name"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
	// Events are the types it gets (see EventTypes); empty: all.
	Events []string `yaml:"events"`
	// Format is FormatCloudEvents (the default) or FormatDistribution.
	Format string `yaml:"format"`
	// Secret signs every delivery (X-Kiln-Signature: sha256=<HMAC>); or
	// read it from SecretFile or the environment variable SecretEnv.
	Secret     string        `yaml:"secret"`
	SecretFile string        `yaml:"secret_file"`
	SecretEnv  string        `yaml:"secret_env"`
	Timeout    time.Duration `yaml:"timeout"`
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// The formats of an endpoint.
const (
	FormatCloudEvents  = "cloudevents"
	FormatDistribution = "distribution"
)

// EventTypes are the event types an endpoint may filter on (notify.Types).
var EventTypes = []string{"push", "delete", "cache.fill", "build.queued", "build.started", "build.succeeded", "build.failed", "build.unchanged", "tag.moved"}

// applyNotificationDefaults gives each endpoint the section's durations
// where it has none.
func (c *Config) applyNotificationDefaults() {
	n := &c.Notifications
	for i := range n.Endpoints {
		e := &n.Endpoints[i]
		if e.Timeout == 0 {
			e.Timeout = n.Timeout
		}
		if e.MinBackoff == 0 {
			e.MinBackoff = n.MinBackoff
		}
		if e.MaxBackoff == 0 {
			e.MaxBackoff = n.MaxBackoff
		}
		if e.Format == "" {
			e.Format = FormatCloudEvents
		}
	}
}

func (c *Config) validateNotifications(bad func(key, format string, args ...any)) {
	n := c.Notifications
	positive(bad, "notifications.timeout", n.Timeout)
	positive(bad, "notifications.min_backoff", n.MinBackoff)
	positive(bad, "notifications.max_backoff", n.MaxBackoff)
	names := map[string]bool{}
	for i, e := range n.Endpoints {
		key := fmt.Sprintf("notifications.endpoints[%d]", i)
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(key+".url", "want an http or https URL, got %q", e.URL)
		}
		if e.Format != FormatCloudEvents && e.Format != FormatDistribution {
			bad(key+".format", "unknown format %q (want %s or %s)", e.Format, FormatCloudEvents, FormatDistribution)
		}
		for _, t := range e.Events {
			if !slices.Contains(EventTypes, t) {
				bad(key+".events", "unknown event type %q (want one of %v)", t, EventTypes)
			}
		}
		if e.Name != "" {
			if names[e.Name] {
				bad(key+".name", "%q names two endpoints", e.Name)
			}
			names[e.Name] = true
		}
		positive(bad, key+".timeout", e.Timeout)
		positive(bad, key+".min_backoff", e.MinBackoff)
		if e.MaxBackoff < e.MinBackoff {
			bad(key+".max_backoff", "must be at least min_backoff (%v)", e.MinBackoff)
		}
	}
}
