package main

import (
	"time"

	"kiln/metrics"
	"kiln/storage"
)

// Store scans behind kiln_stored_blobs and kiln_stored_bytes: after a
// change (push, cache fill, GC) at most every storeScanInterval, and at
// least every storeScanMaxAge for changes this process cannot see.
// Variables so tests can scan after every change.
var (
	storeScanInterval = 30 * time.Second
	storeScanMaxAge   = 10 * time.Minute
)

// registerStoreMetrics exports the blobs the store holds and their bytes.
func registerStoreMetrics(m *metrics.Metrics, store *storage.Store) {
	m.StoreUsage(store.Usage, storeScanInterval, storeScanMaxAge)
}
