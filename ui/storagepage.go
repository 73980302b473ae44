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
	h.render(w, r, http.StatusOK, "storage", "Storage", "storage", d)
}
