package ui

import (
	"net/http"
	"time"
)

type storageData struct {
	Known   bool // usage was counted
	Blobs   int
	Bytes   int64
	Counted time.Time
	Err     bool

	Cache    *CacheUsage // nil: no cache to show
	CacheErr bool
}

// CacheUsage is what the storage page shows of the pull-through cache.
type CacheUsage struct {
	Images   int
	Bytes    int64 // held by cached images alone
	Shared   int64 // referenced by pushed or built images too
	Budget   int64 // 0: none
	Measured time.Time
}

// Percent is how much of its budget the cache uses.
func (c CacheUsage) Percent() int {
	if c.Budget <= 0 {
		return 0
	}
	return int(100 * c.Bytes / c.Budget)
}

// storage shows the blobs the store holds, as last counted, and the GC
// buttons.
func (h *handler) storage(w http.ResponseWriter, r *http.Request) {
	var d storageData
	if h.opts.Usage != nil {
		var err error
		d.Blobs, d.Bytes, d.Counted, err = h.opts.Usage()
		d.Known, d.Err = err == nil, err != nil
		if err != nil {
			h.opts.Logger.Warn("ui: counting storage", "err", err)
		}
	}
	if h.opts.Cache != nil {
		c, err := h.opts.Cache(r.Context())
		if err != nil {
			d.CacheErr = true
			h.opts.Logger.Warn("ui: measuring the cache", "err", err)
		} else {
			d.Cache = &c
		}
	}
	h.render(w, r, http.StatusOK, "storage", "Storage", "storage", d)
}
