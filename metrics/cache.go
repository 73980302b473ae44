package metrics

import "github.com/prometheus/client_golang/prometheus"

// CacheState records what a measure or an eviction of the pull-through
// cache found: its own bytes, its budget (0: none), and the images and
// bytes an eviction just took (0 for a measure).
type CacheState func(bytes, budget int64, evictedImages int, evictedBytes int64)

// Cache registers kiln_cache_bytes, kiln_cache_budget_bytes,
// kiln_cache_evicted_images_total and kiln_cache_evicted_bytes_total, and
// returns what records a state. Call it once. Hits and misses are
// kiln_proxy_cache_requests_total.
func (m *Metrics) Cache() CacheState {
	size := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kiln_cache_bytes", Help: "Bytes the pull-through cache holds alone (what evicting all of it would free), at the last measure.",
	})
	budget := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kiln_cache_budget_bytes", Help: "The pull-through cache's budget (cache.max_size) in bytes; 0: none.",
	})
	images := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kiln_cache_evicted_images_total", Help: "Images evicted from the pull-through cache.",
	})
	bytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kiln_cache_evicted_bytes_total", Help: "Bytes eviction let go from the pull-through cache (freed by the collection after it).",
	})
	m.reg.MustRegister(size, budget, images, bytes)
	return func(b, max int64, evictedImages int, evictedBytes int64) {
		size.Set(float64(b))
		budget.Set(float64(max))
		images.Add(float64(evictedImages))
		bytes.Add(float64(evictedBytes))
	}
}
