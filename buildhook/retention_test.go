package buildhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"

	"kiln/storage"
)

// readCounter counts the build records read from the store.
type readCounter struct {
	storagedriver.StorageDriver
	reads atomic.Int64
}

func (d *readCounter) GetContent(ctx context.Context, path string) ([]byte, error) {
	if strings.HasPrefix(path, "/builds/") && strings.HasSuffix(path, "/record") {
		d.reads.Add(1)
	}
	return d.StorageDriver.GetContent(ctx, path)
}

// recordAt saves a record of rule, queued at t, with status.
func recordAt(t *testing.T, rs *Records, seq int, rule, status string, at time.Time) *Record {
	t.Helper()
	r := &Record{ID: fmt.Sprintf("%s-%06d-%04d", at.Format("20060102T150405"), 0, seq), Rule: rule, Status: status, Queued: at}
	if r.Done() {
		finished := at.Add(time.Second)
		r.Finished = &finished
	}
	if err := rs.Save(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := rs.store.PutBuildLog(context.Background(), r.ID, []byte("log of "+r.ID)); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRecordsRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rs := NewRecords(storage.NewInMemory(storage.Options{}))
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

	// Rule a: 30 builds an hour apart, oldest first; only the oldest
	// succeeded. Rule b: 3 old ones. One of a's oldest is still queued.
	var a []*Record
	for i := range 30 {
		status := StatusFailed
		if i == 0 {
			status = StatusSucceeded
		}
		a = append(a, recordAt(t, rs, i, "a", status, now.Add(-time.Duration(30-i)*time.Hour)))
	}
	queued := recordAt(t, rs, 100, "a", StatusQueued, now.Add(-40*time.Hour))
	var b []*Record
	for i := range 3 {
		b = append(b, recordAt(t, rs, 200+i, "b", StatusFailed, now.Add(-time.Duration(100+i)*time.Hour)))
	}

	n, err := rs.Prune(ctx, Retention{Keep: 5, MaxAge: 10 * time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	// Kept of a: the newest 5 (25..29), those finished under 10h ago
	// (20..29: 20 ended 9h59m59s ago), the newest success (0); the queued one. Of b: all three
	// (the newest five).
	var want []string
	want = append(want, a[0].ID)
	for _, r := range a[20:] {
		want = append(want, r.ID)
	}
	want = append(want, queued.ID)
	for _, r := range b {
		want = append(want, r.ID)
	}
	slices.Sort(want)
	ids, _ := rs.store.BuildIDs(ctx)
	slices.Sort(ids)
	if !slices.Equal(ids, want) {
		t.Errorf("kept %v\nwant %v", ids, want)
	}
	if n != 30+1+3-len(want) {
		t.Errorf("Prune says %d deleted, want %d", n, 30+1+3-len(want))
	}
	if _, err := rs.store.BuildLog(ctx, a[5].ID); !errors.Is(err, storage.ErrBuildUnknown) {
		t.Errorf("the log of a deleted build is still there: %v", err)
	}
	if _, err := rs.Get(ctx, a[5].ID); !errors.Is(err, ErrNoBuild) {
		t.Errorf("a deleted build's record still reads: %v", err)
	}

	// Both bounds off: nothing goes.
	if n, err := rs.Prune(ctx, Retention{}, now.Add(1000*time.Hour)); n != 0 || err != nil {
		t.Errorf("no retention deleted %d (%v)", n, err)
	}
}

func TestBuildListIsPaged(t *testing.T) {
	t.Parallel()
	driver := &readCounter{StorageDriver: inmemory.New()}
	s := &Service{records: NewRecords(storage.New(driver, storage.Options{}))}
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var wantA []string
	for i := range 250 {
		rule := "a"
		if i%5 == 0 {
			rule = "b"
		}
		r := recordAt(t, s.records, i, rule, StatusSucceeded, start.Add(time.Duration(i)*time.Minute))
		if rule == "a" {
			wantA = append([]string{r.ID}, wantA...) // newest first
		}
	}
	running := recordAt(t, s.records, 999, "a", StatusRunning, start.Add(-time.Hour))
	wantA = append(wantA, running.ID)

	// A fresh kiln reads each finished record once, then never again.
	s.records = NewRecords(storage.New(driver, storage.Options{}))
	next := "/kiln/v1/builds?rule=a&limit=60"
	var got []string
	pages := 0
	for next != "" {
		rec := httptest.NewRecorder()
		s.listBuilds(rec, httptest.NewRequest(http.MethodGet, next, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, rec.Code, rec.Body)
		}
		var page []Record
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		if len(page) > 60 {
			t.Fatalf("page of %d records, limit 60", len(page))
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		pages++
		next = ""
		if m := regexp.MustCompile(`^<([^>]+)>; rel="next"$`).FindStringSubmatch(rec.Header().Get("Link")); m != nil {
			next = m[1]
		}
	}
	if !slices.Equal(got, wantA) {
		t.Errorf("paged through %d records in %d pages, want %d in order", len(got), pages, len(wantA))
	}
	if pages != 4 {
		t.Errorf("%d pages of 60 for %d records, want 4", pages, len(wantA))
	}
	firstPass := driver.reads.Load()
	if firstPass > 251 {
		t.Errorf("listing read %d records, want each at most once (251)", firstPass)
	}
	driver.reads.Store(0)
	rec := httptest.NewRecorder()
	s.listBuilds(rec, httptest.NewRequest(http.MethodGet, "/kiln/v1/builds?limit=10", nil))
	if n := driver.reads.Load(); n > 1 {
		t.Errorf("a second listing read %d records from the store, want only the running build's", n)
	}
	rec = httptest.NewRecorder()
	s.listBuilds(rec, httptest.NewRequest(http.MethodGet, "/kiln/v1/builds?before=../x", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("before=../x: %d, want 400", rec.Code)
	}
}
