// Package metrics keeps kiln's Prometheus metrics (requests, bytes,
// uploads in flight, garbage collections, blobs stored, builds, the
// pull-through cache) and serves them on /metrics.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds one process's collectors, in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	bytesIn         *prometheus.CounterVec
	bytesOut        *prometheus.CounterVec
	uploadsInFlight prometheus.Gauge

	gcRuns       *prometheus.CounterVec
	gcFreedBytes prometheus.Counter
	gcFreedBlobs prometheus.Counter
	gcKeptBlobs  prometheus.Gauge
	usage        *usageCollector // nil until StoreUsage

	builds        *prometheus.CounterVec
	buildDuration *prometheus.HistogramVec
	proxyCache    *prometheus.CounterVec
}

// New returns the collectors, registered along with the Go runtime's and
// the process's own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_http_request_bytes_total", Help: "Request body bytes received, by route.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_http_response_bytes_total", Help: "Response body bytes sent, by route.",
		}, []string{"route"}),
		uploadsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kiln_uploads_in_flight", Help: "Blob upload requests (POST, PATCH, PUT) being served.",
		}),
		gcRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_gc_runs_total", Help: "Garbage collections by result (ok, error).",
		}, []string{"result"}),
		gcFreedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_gc_freed_bytes_total", Help: "Bytes freed by garbage collection.",
		}),
		gcFreedBlobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kiln_gc_freed_blobs_total", Help: "Blobs deleted by garbage collection.",
		}),
		gcKeptBlobs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kiln_gc_kept_blobs", Help: "Blobs referenced by kept manifests at the last garbage collection.",
		}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_builds_total", Help: "Builds ended, by rule and result (succeeded, failed, unchanged, interrupted).",
		}, []string{"rule", "result"}),
		buildDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kiln_build_duration_seconds", Help: "How long builds ran, by rule and result.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}, []string{"rule", "result"}),
		proxyCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_proxy_cache_requests_total",
			Help: "Pulls the pull-through cache handled, by kind (manifest, blob) and result (hit, miss, coalesced, revalidated, stale). Blob hits are not counted: the registry serves them without the cache.",
		}, []string{"kind", "result"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.uploadsInFlight,
		m.gcRuns, m.gcFreedBytes, m.gcFreedBlobs, m.gcKeptBlobs,
		m.builds, m.buildDuration, m.proxyCache,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in Prometheus' text format.
func (m *Metrics) Handler() http.Handler {
	// A failed store scan leaves out its gauges, not the whole page.
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Register adds more collectors (e.g. counters of the pull-through cache).
func (m *Metrics) Register(c ...prometheus.Collector) { m.reg.MustRegister(c...) }

// Observe records one finished request.
func (m *Metrics) Observe(r *http.Request, status int, bytesIn, bytesOut int64, d time.Duration) {
	route := Route(r.Method, r.URL.Path)
	method := methodLabel(r.Method)
	m.requests.WithLabelValues(route, method, statusLabel(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
	if bytesIn > 0 {
		m.bytesIn.WithLabelValues(route).Add(float64(bytesIn))
	}
	if bytesOut > 0 {
		m.bytesOut.WithLabelValues(route).Add(float64(bytesOut))
	}
	if status == http.StatusCreated && (route == "blob_upload" || route == "manifest") {
		m.storeChanged() // a finished upload or a manifest may have added a blob
	}
}

// TrackUploads counts blob upload requests in flight around next.
func (m *Metrics) TrackUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && Route(r.Method, r.URL.Path) == "blob_upload" {
			m.uploadsInFlight.Inc()
			defer m.uploadsInFlight.Dec()
		}
		next.ServeHTTP(w, r)
	})
}

// GCRun records a garbage collection's outcome.
func (m *Metrics) GCRun(blobsFreed int, bytesFreed int64, blobsKept int, err error) {
	if err != nil {
		m.gcRuns.WithLabelValues("error").Inc()
		return
	}
	m.gcRuns.WithLabelValues("ok").Inc()
	m.gcFreedBlobs.Add(float64(blobsFreed))
	m.gcFreedBytes.Add(float64(bytesFreed))
	m.gcKeptBlobs.Set(float64(blobsKept))
	m.storeChanged()
}

// BuildDone records a build that ended (buildhook's OnBuildDone). Rule
// names come from the configuration; adopted images all count as "auto".
func (m *Metrics) BuildDone(rule, result string, ran time.Duration) {
	m.builds.WithLabelValues(ruleLabel(rule), result).Inc()
	m.buildDuration.WithLabelValues(ruleLabel(rule), result).Observe(ran.Seconds())
}

// BuildQueue exports gauges of the builds queued and running now.
func (m *Metrics) BuildQueue(counts func() (queued, running int)) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kiln_builds_queued", Help: "Builds waiting to run."},
			func() float64 { q, _ := counts(); return float64(q) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kiln_builds_running", Help: "Builds running."},
			func() float64 { _, r := counts(); return float64(r) }),
	)
}

// ProxyCache records how the pull-through cache answered a pull (the
// proxy's cache observer). What was fetched upstream is now stored.
func (m *Metrics) ProxyCache(kind, result string) {
	m.proxyCache.WithLabelValues(kind, result).Inc()
	if result == "miss" || result == "coalesced" || result == "revalidated" {
		m.storeChanged()
	}
}

// ProxyCacheLabels starts every kind and result pair at zero, so rates
// work from the first scrape.
func (m *Metrics) ProxyCacheLabels(kinds, results []string) {
	for _, k := range kinds {
		for _, r := range results {
			m.proxyCache.WithLabelValues(k, r)
		}
	}
}
