package metrics

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreScan counts the blobs in the store and their bytes.
type StoreScan func(ctx context.Context) (blobs int, bytes int64, err error)

// StoreUsage exports kiln_stored_blobs and kiln_stored_bytes, counted by
// scan when Prometheus scrapes. Walking the store costs a listing per
// blob directory, so a scrape rescans only when something may have
// changed it (a finished upload, a blob fetched by the cache, a garbage
// collection) and minInterval has passed since the last scan, or when
// maxAge has passed (other processes, such as fsck or a second instance,
// change the store unseen). Otherwise it repeats the last counts.
func (m *Metrics) StoreUsage(scan StoreScan, minInterval, maxAge time.Duration) {
	m.usage = &usageCollector{
		scan: scan, minInterval: minInterval, maxAge: maxAge,
		blobs: prometheus.NewDesc("kiln_stored_blobs", "Blobs in the store (counted by a store scan; see kiln_stored_scan_age_seconds).", nil, nil),
		bytes: prometheus.NewDesc("kiln_stored_bytes", "Bytes of the blobs in the store.", nil, nil),
		age:   prometheus.NewDesc("kiln_stored_scan_age_seconds", "Seconds since the store scan behind kiln_stored_blobs and kiln_stored_bytes.", nil, nil),
	}
	m.reg.MustRegister(m.usage)
}

// storeChanged marks the last store scan out of date.
func (m *Metrics) storeChanged() {
	if m.usage != nil {
		m.usage.changed()
	}
}

// scanTimeout bounds one store scan: a scrape must not hang on the store.
const scanTimeout = time.Minute

type usageCollector struct {
	scan              StoreScan
	minInterval       time.Duration
	maxAge            time.Duration
	blobs, bytes, age *prometheus.Desc

	// dirty is outside mu: a request marking a change must not wait for
	// a scan in progress.
	dirty atomic.Bool

	mu      sync.Mutex // held through a scan: concurrent scrapes share it
	scanned bool
	at      time.Time
	nBlobs  int
	nBytes  int64
}

func (c *usageCollector) changed() {
	c.dirty.Store(true)
}

func (c *usageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.blobs
	ch <- c.bytes
	ch <- c.age
}

func (c *usageCollector) Collect(ch chan<- prometheus.Metric) {
	blobs, bytes, at, err := c.current()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.blobs, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.blobs, prometheus.GaugeValue, float64(blobs))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, time.Since(at).Seconds())
}

// current returns the counts, scanning first when they are out of date;
// an error only when no scan ever succeeded.
func (c *usageCollector) current() (blobs int, bytes int64, at time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	since := time.Since(c.at)
	if !c.scanned || since >= c.maxAge || since >= c.minInterval && c.dirty.Load() {
		// Cleared before the scan: a change during it marks it again.
		c.dirty.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), scanTimeout)
		blobs, bytes, err := c.scan(ctx)
		cancel()
		if err != nil {
			c.dirty.Store(true)
			if !c.scanned {
				return 0, 0, time.Time{}, err
			}
			// Keep serving the last counts; their age tells they are old.
		} else {
			c.scanned, c.at, c.nBlobs, c.nBytes = true, time.Now(), blobs, bytes
		}
	}
	return c.nBlobs, c.nBytes, c.at, nil
}

// StoredUsage returns the blobs the store holds, their bytes and when
// they were counted, from the scans behind kiln_stored_blobs (see
// StoreUsage): reading it costs a scan only when a scrape would.
func (m *Metrics) StoredUsage() (blobs int, bytes int64, at time.Time, err error) {
	if m.usage == nil {
		return 0, 0, time.Time{}, errors.New("metrics: StoreUsage was not called")
	}
	return m.usage.current()
}
