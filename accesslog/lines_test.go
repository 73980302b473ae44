package accesslog

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestLinesChoosesWhatIsLogged: errors logs only responses of 400 and
// above, none logs nothing; the observer sees every request either way.
func TestLinesChoosesWhatIsLogged(t *testing.T) {
	for _, tc := range []struct {
		lines Lines
		want  []string // the paths that get a line
	}{
		{AllLines, []string{"/ok", "/missing", "/broken"}},
		{ErrorLines, []string{"/missing", "/broken"}},
		{NoLines, nil},
	} {
		var logs bytes.Buffer
		observed := 0
		h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/missing":
				w.WriteHeader(http.StatusNotFound)
			case "/broken":
				w.WriteHeader(http.StatusInternalServerError)
			}
		}), Options{
			Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
			Observe: func(*http.Request, int, int64, int64, time.Duration) { observed++ },
			Lines:   tc.lines,
		})
		for _, p := range []string{"/ok", "/missing", "/broken"} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			if i := strings.Index(l, "path="); i >= 0 {
				got = append(got, strings.Fields(l[i+len("path="):])[0])
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Lines %d logged %q, want %q", tc.lines, got, tc.want)
		}
		if observed != 3 {
			t.Errorf("Lines %d: observer saw %d requests, want 3", tc.lines, observed)
		}
	}
}

// TestQuietLogsAtDebug: a request a handler marks Quiet gets a debug line,
// the others keep info.
func TestQuietLogsAtDebug(t *testing.T) {
	var logs bytes.Buffer
	h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/internal" {
			Quiet(r.Context())
		}
	}), Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	for _, p := range []string{"/internal", "/user"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=DEBUG") || !strings.Contains(lines[0], "path=/internal") ||
		!strings.Contains(lines[1], "level=INFO") || !strings.Contains(lines[1], "path=/user") {
		t.Errorf("want a DEBUG line for /internal, then an INFO one for /user; got\n%s", logs.String())
	}
	Quiet(t.Context()) // outside a request: nothing to quiet, no panic
}
