package metrics

import "github.com/prometheus/client_golang/prometheus"

// Webhooks registers kiln_webhook_events_pending (events in the outbox,
// read from pending at each scrape) and kiln_webhook_deliveries_total by
// endpoint and result (ok, failed), each endpoint's pair starting at zero.
// endpoints are the configured names (or indexes), never URLs, which may
// hold tokens. It returns what records a delivery attempt. Call it once.
func (m *Metrics) Webhooks(endpoints []string, pending func() int) func(endpoint string, ok bool) {
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_webhook_deliveries_total", Help: "Webhook delivery attempts by endpoint and result (ok: a 2xx; failed: anything else, retried).",
	}, []string{"endpoint", "result"})
	m.reg.MustRegister(deliveries, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kiln_webhook_events_pending", Help: "Events in the outbox that some webhook has not taken yet.",
	}, func() float64 { return float64(pending()) }))
	for _, e := range endpoints {
		deliveries.WithLabelValues(e, "ok")
		deliveries.WithLabelValues(e, "failed")
	}
	return func(endpoint string, ok bool) {
		result := "failed"
		if ok {
			result = "ok"
		}
		deliveries.WithLabelValues(endpoint, result).Inc()
	}
}
