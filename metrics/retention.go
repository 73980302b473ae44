package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RetentionRun records one run of the retention policies that deleted
// (not a dry run): tags and manifests deleted, whether it failed (err, or
// a deletion that failed), and when it ended.
type RetentionRun func(tags, manifests int, failed bool, ended time.Time)

// Retention registers kiln_retention_runs_total{result},
// kiln_retention_deleted_total{kind} and
// kiln_retention_last_run_timestamp_seconds, and returns what records a
// run. Call it once.
func (m *Metrics) Retention() RetentionRun {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_retention_runs_total", Help: "Runs of the retention policies (dry runs not counted), by result (ok, error).",
	}, []string{"result"})
	deleted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kiln_retention_deleted_total", Help: "Tags and untagged manifests retention policies deleted, by kind (tag, manifest).",
	}, []string{"kind"})
	last := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kiln_retention_last_run_timestamp_seconds", Help: "When the last retention run that deleted (not a dry run) ended, in Unix seconds; 0 before the first.",
	})
	// Every series exists from the start, so rate() and alerts see zeros.
	for _, r := range []string{"ok", "error"} {
		runs.WithLabelValues(r)
	}
	for _, k := range []string{"tag", "manifest"} {
		deleted.WithLabelValues(k)
	}
	m.reg.MustRegister(runs, deleted, last)
	return func(tags, manifests int, failed bool, ended time.Time) {
		result := "ok"
		if failed {
			result = "error"
		}
		runs.WithLabelValues(result).Inc()
		deleted.WithLabelValues("tag").Add(float64(tags))
		deleted.WithLabelValues("manifest").Add(float64(manifests))
		last.Set(float64(ended.UnixNano()) / 1e9)
		if tags+manifests > 0 {
			m.storeChanged()
		}
	}
}
