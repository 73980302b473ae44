package notify

import (
	"slices"
	"time"
)

// Endpoint is one webhook.
type Endpoint struct {
	Name    string // in metrics and logs; never the URL, which may hold a token
	URL     string
	Headers map[string]string
	Events  []string // the types it wants; empty: all
	Format  string   // CloudEvents (default) or Distribution
	Secret  []byte   // when set, every delivery carries SignatureHeader
	Timeout time.Duration
	// Backoff between failed attempts doubles from MinBackoff up to
	// MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Defaults for an Endpoint's zero durations.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
)

func (ep *Endpoint) wants(typ string) bool {
	return len(ep.Events) == 0 || slices.Contains(ep.Events, typ)
}

// backoff is how long to wait after the failed attempt number n (from 0).
func (ep *Endpoint) backoff(n int) time.Duration {
	d := ep.MinBackoff
	for range n {
		d *= 2
		if d >= ep.MaxBackoff || d <= 0 {
			return ep.MaxBackoff
		}
	}
	return min(d, ep.MaxBackoff)
}

func (ep *Endpoint) applyDefaults() {
	if ep.Timeout <= 0 {
		ep.Timeout = DefaultTimeout
	}
	if ep.MinBackoff <= 0 {
		ep.MinBackoff = DefaultMinBackoff
	}
	if ep.MaxBackoff <= 0 {
		ep.MaxBackoff = DefaultMaxBackoff
	}
	if ep.MaxBackoff < ep.MinBackoff {
		ep.MaxBackoff = ep.MinBackoff
	}
}
