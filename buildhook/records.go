package buildhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// Build statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Record is the stored account of one build.
type Record struct {
	ID            string        `json:"id"`
	Rule          string        `json:"rule"`
	TriggerRef    string        `json:"triggerRef,omitempty"`
	TriggerDigest digest.Digest `json:"triggerDigest,omitempty"`
	Reason        string        `json:"reason"`
	Builder       string        `json:"builder,omitempty"`
	Status        string        `json:"status"`
	Error         string        `json:"error,omitempty"`
	Result        digest.Digest `json:"result,omitempty"`
	Queued        time.Time     `json:"queued"`
	Started       *time.Time    `json:"started,omitempty"`
	Finished      *time.Time    `json:"finished,omitempty"`
	Attempts      int           `json:"attempts,omitempty"`
	// Restarts counts the times kiln stopped without finishing this build
	// (killed, crashed) before this record; the next start resumes it
	// once, never after a second time.
	Restarts int `json:"restarts,omitempty"`
}

// Done reports whether the build has ended.
func (r *Record) Done() bool { return r.Status == StatusSucceeded || r.Status == StatusFailed }

// Records keeps build records and logs in the store, so they outlive the
// process, and the logs of running builds in memory for followers.
type Records struct {
	store recordStore
	mu    sync.Mutex
	live  map[string]*liveLog
}

// recordStore is the part of *storage.Store that Records uses; tests give
// a failing one to see what a broken backend shows.
type recordStore interface {
	PutBuildRecord(ctx context.Context, id string, record []byte) error
	BuildRecord(ctx context.Context, id string) ([]byte, error)
	BuildIDs(ctx context.Context) ([]string, error)
	PutBuildLog(ctx context.Context, id string, log []byte) error
	BuildLog(ctx context.Context, id string) ([]byte, error)
}

// NewRecords returns the records kept in store.
func NewRecords(store *storage.Store) *Records {
	return newRecords(store)
}

func newRecords(store recordStore) *Records {
	return &Records{store: store, live: map[string]*liveLog{}}
}

// Save writes r.
func (rs *Records) Save(ctx context.Context, r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return rs.store.PutBuildRecord(ctx, r.ID, b)
}

// ErrNoBuild is returned for an unknown build id.
var ErrNoBuild = errors.New("no such build")

// Get reads the record of build id.
func (rs *Records) Get(ctx context.Context, id string) (*Record, error) {
	if !validBuildID(id) {
		return nil, ErrNoBuild
	}
	b, err := rs.store.BuildRecord(ctx, id)
	if err != nil {
		if errors.Is(err, storage.ErrBuildUnknown) {
			return nil, ErrNoBuild
		}
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("build %s: corrupt record: %w", id, err)
	}
	return &r, nil
}

// List returns every record, newest first.
func (rs *Records) List(ctx context.Context) ([]*Record, error) {
	ids, err := rs.store.BuildIDs(ctx)
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	out := make([]*Record, 0, len(ids))
	for _, id := range ids {
		r, err := rs.Get(ctx, id)
		if err != nil {
			continue // half-created; nothing to show
		}
		out = append(out, r)
	}
	return out, nil
}

var buildSeq atomic.Uint32

// newBuildID returns an id that sorts by creation time.
func newBuildID() string {
	now := time.Now().UTC()
	return fmt.Sprintf("%s-%06d-%04d", now.Format("20060102T150405"), now.Nanosecond()/1000, buildSeq.Add(1)%10000)
}

func validBuildID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}
