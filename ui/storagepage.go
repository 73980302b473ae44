package ui

import "net/http"

type storageData struct {
	Known bool // usage was counted
	Blobs int
	Bytes int64
	Err   bool
}

// storage shows the blobs the store holds and the GC buttons. Counting
// walks the blob tree: this page costs what `kiln gc --dry-run` lists.
func (h *handler) storage(w http.ResponseWriter, r *http.Request) {
	var d storageData
	if h.opts.Usage != nil {
		var err error
		d.Blobs, d.Bytes, err = h.opts.Usage(r.Context())
		d.Known, d.Err = err == nil, err != nil
		if err != nil {
			h.opts.Logger.Warn("ui: counting storage", "err", err)
		}
	}
	h.render(w, r, http.StatusOK, "storage", "Storage", "storage", d)
}
