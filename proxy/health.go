package proxy

import (
	"log/slog"
	"sync"
	"time"
)

// minDownWindow is how long an upstream that failed counts as down, at
// least: stale tags are served from the cache at once meanwhile, without
// each pull waiting for the upstream's timeout again.
const minDownWindow = 10 * time.Second

func downWindow(timeout time.Duration) time.Duration {
	return max(minDownWindow, timeout)
}

// health remembers an upstream that failed (a downError) for a while.
// The first request after the window asks the upstream again.
type health struct {
	name   string
	window time.Duration
	log    *slog.Logger
	now    func() time.Time // the clock windows are measured on

	mu        sync.Mutex
	isDown    bool      // since the last failure, no answer came
	downUntil time.Time // revalidations skip the upstream until then
}

// down records a failure; it logs when the upstream was up until now.
func (h *health) down(err error) {
	h.mu.Lock()
	was := h.isDown
	h.isDown = true
	window := h.window
	h.downUntil = h.now().Add(window)
	h.mu.Unlock()
	if !was && h.log != nil {
		h.log.Warn("upstream down: serving stale tags from the cache", "upstream", h.name, "for", window, "err", err)
	}
}

// up records an answer; it logs when the upstream was down until now.
func (h *health) up() {
	h.mu.Lock()
	was := h.isDown
	h.isDown = false
	h.downUntil = time.Time{}
	h.mu.Unlock()
	if was && h.log != nil {
		h.log.Info("upstream back up", "upstream", h.name)
	}
}

// recentlyDown reports whether the upstream failed less than its window
// ago: a revalidation then serves the cache without asking it.
func (h *health) recentlyDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.isDown && h.now().Before(h.downUntil)
}

// setWindow changes how long a failure is remembered (tests).
func (h *health) setWindow(d time.Duration) {
	h.mu.Lock()
	h.window = d
	h.mu.Unlock()
}
