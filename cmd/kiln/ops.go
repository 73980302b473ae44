package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"kiln/metrics"
	"kiln/proxy"
	"kiln/storage"
)

// opsRoutes answers the operator's endpoints in front of everything else:
// /healthz (the process is alive), /readyz (the store answers) and
// /metrics (Prometheus).
func opsRoutes(next http.Handler, store *storage.Store, m *metrics.Metrics) http.Handler {
	metricsHandler := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
		case "/readyz":
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if err := store.Ping(ctx); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("store unreachable: " + err.Error() + "\n"))
				return
			}
			w.Write([]byte("ok\n"))
		case "/metrics":
			metricsHandler.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// registerProxyMetrics exports the pull-through cache's counters: how it
// answered pulls, and the requests it sent upstream.
func registerProxyMetrics(m *metrics.Metrics, p *proxy.Proxy) {
	if p == nil {
		return
	}
	m.ProxyCacheLabels(proxy.CacheResults())
	p.SetCacheObserver(m.ProxyCache)
	m.Register(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kiln_proxy_upstream_requests_total", Help: "Requests sent to upstream registries.",
		}, func() float64 { return float64(p.UpstreamRequests()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kiln_proxy_upstream_blob_fetches_total", Help: "Blobs fetched from upstream registries.",
		}, func() float64 { return float64(p.BlobFetches()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "kiln_proxy_upstream_digest_mismatches_total", Help: "Upstream blobs and manifests whose bytes did not match their digest: neither served whole nor cached.",
		}, func() float64 { return float64(p.DigestMismatches()) }),
	)
}
