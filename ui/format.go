package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

var funcs = template.FuncMap{
	"short":   shortDigest,
	"bytes":   storage.FormatBytes,
	"when":    when,
	"ago":     ago,
	"join":    strings.Join,
	"status":  statusClass,
	"elapsed": elapsed,
}

// shortDigest is the first 12 hex digits, as docker shows image ids.
func shortDigest(d digest.Digest) string {
	s := d.Encoded()
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago says how long ago t was, coarsely: "3m ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// elapsed is how long a build ran, or has been running.
func elapsed(start, end *time.Time) string {
	if start == nil {
		return "-"
	}
	stop := time.Now()
	if end != nil {
		stop = *end
	}
	return stop.Sub(*start).Round(100 * time.Millisecond).String()
}

// statusClass is the CSS class of a build status; unknown ones get none.
func statusClass(s string) string {
	switch s {
	case "queued", "running", "succeeded", "failed", "unchanged":
		return "st-" + s
	}
	return "st-none"
}
