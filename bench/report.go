package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Result is what a run measured.
type Result struct {
	URL      string    `json:"url"`
	BlobSize int64     `json:"blob_size"`
	Started  time.Time `json:"started"`
	Elapsed  string    `json:"elapsed"`
	Metrics  []Metric  `json:"metrics"`
	// Verified counts the blobs and manifests whose digest the client
	// checked (every push, pull and manifest answer).
	Verified int      `json:"verified"`
	Notes    []string `json:"notes,omitempty"`

	mu sync.Mutex
}

// Metric is one measured figure.
type Metric struct {
	Key   string  `json:"key"`  // stable identifier, e.g. push_mb_s
	Name  string  `json:"name"` // what a table shows
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	// Higher is true when a larger value is better.
	Higher bool `json:"higher_is_better"`
}

func (r *Result) add(m Metric) {
	r.mu.Lock()
	r.Metrics = append(r.Metrics, m)
	r.mu.Unlock()
}

func (r *Result) note(s string) {
	r.mu.Lock()
	r.Notes = append(r.Notes, s)
	r.mu.Unlock()
}

// Metric returns the metric with key, if measured.
func (r *Result) Metric(key string) (Metric, bool) {
	for _, m := range r.Metrics {
		if m.Key == key {
			return m, true
		}
	}
	return Metric{}, false
}

// WriteText prints the figures as an aligned table.
func (r *Result) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "registry %s, blobs of %s, %s, %d digests verified\n", r.URL, FormatSize(r.BlobSize), r.Elapsed, r.Verified)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "%s\t%s\t\n", FormatValue(m.Value), m.Name)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// FormatValue prints a figure with precision that suits its size.
func FormatValue(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// peakRSS reads the server's high-water resident set (VmHWM) from
// /proc/PID/status. It is the peak since the process started, so it
// covers every figure this run (and earlier runs) put on it.
func (r *runner) peakRSS(context.Context) error {
	if r.cfg.PID <= 0 {
		r.res.note("peak RSS: no --pid given, not measured")
		return nil
	}
	kib, err := vmHWM(r.cfg.PID)
	if err != nil {
		return err
	}
	r.res.add(Metric{Key: "rss_mib", Name: "peak RSS MiB (server VmHWM)", Unit: "MiB", Value: float64(kib) / 1024})
	return nil
}

func vmHWM(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM line", pid)
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// ParseSize reads sizes such as 256MiB, 64M, 1GiB, 4096 or 10MB
// (K, M, G alone are binary).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

// FormatSize prints a byte count in the largest binary unit dividing it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
