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
	// StatusUnchanged ends a build whose inputs equal those of the rule's
	// last successful build: it moved no tag and triggered nothing.
	StatusUnchanged = "unchanged"
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
	// Inputs is the digest of everything the build read (see
	// inputsDigest); a build with the same inputs is unchanged.
	Inputs   digest.Digest `json:"inputs,omitempty"`
	Queued   time.Time     `json:"queued"`
	Started  *time.Time    `json:"started,omitempty"`
	Finished *time.Time    `json:"finished,omitempty"`
	Attempts int           `json:"attempts,omitempty"`
	// Instance is, in a cluster, the instance that ran the build (its
	// last run, when another instance took it over).
	Instance string `json:"instance,omitempty"`
	// Restarts counts the times kiln stopped without finishing this build
	// (killed, crashed) before this record; the next start resumes it
	// once, never after a second time.
	Restarts int `json:"restarts,omitempty"`
}

// Done reports whether the build has ended.
func (r *Record) Done() bool {
	return r.Status == StatusSucceeded || r.Status == StatusFailed || r.Status == StatusUnchanged
}

// Records keeps build records and logs in the store, so they outlive the
// process, and the logs of running builds in memory for followers.
type Records struct {
	store recordStore
	mu    sync.Mutex
	live  map[string]*liveLog
	// done holds the records of finished builds once read or written:
	// they no longer change, so listing them again reads nothing.
	done map[string]*Record
	// syncs are the queued records being made durable (SaveQueued).
	syncs sync.WaitGroup
	// logLimit bounds each build's log (see liveLog); 0: defaultLogLimit.
	logLimit int
}

// recordStore is the part of *storage.Store that Records uses; tests give
// a failing one to see what a broken backend shows.
type recordStore interface {
	PutBuildRecord(ctx context.Context, id string, record []byte) error
	BuildRecord(ctx context.Context, id string) ([]byte, error)
	BuildIDs(ctx context.Context) ([]string, error)
	PutBuildLog(ctx context.Context, id string, log []byte) error
	FinishBuildLog(ctx context.Context, id string, log []byte) error
	BuildLog(ctx context.Context, id string) ([]byte, error)
	BuildLogFrom(ctx context.Context, id string, offset int64) ([]byte, error)
	DeleteBuild(ctx context.Context, id string) error
}

// recordFinder is a recordStore that selects records itself, in one
// query (the builds table of a cluster).
type recordFinder interface {
	FindRecords(ctx context.Context, q Query) ([]*Record, bool, error)
}

// NewRecords returns the records kept in store.
func NewRecords(store *storage.Store) *Records {
	return newRecords(store)
}

func newRecords(store recordStore) *Records {
	return &Records{store: store, live: map[string]*liveLog{}, done: map[string]*Record{}}
}

// Save writes r.
func (rs *Records) Save(ctx context.Context, r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := rs.store.PutBuildRecord(ctx, r.ID, b); err != nil {
		return err
	}
	rs.remember(r)
	return nil
}

// noter is a recordStore that can write a running build's record without
// waiting for the disk (Store.NoteBuildRecord).
type noter interface {
	NoteBuildRecord(ctx context.Context, id string, record []byte) error
}

// Note writes r, the record of a running build, as Save does, but without
// waiting for the disk where the store can: its progress (inputs,
// builder, attempts) need not survive a crash of the machine, and each
// durable write is two fsyncs on a build's path.
func (rs *Records) Note(ctx context.Context, r *Record) error {
	n, ok := rs.store.(noter)
	if !ok || r.Done() {
		return rs.Save(ctx, r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := n.NoteBuildRecord(ctx, r.ID, b); err != nil {
		return err
	}
	rs.remember(r)
	return nil
}

// NoteLater is Note for the progress of a build whose log is open: r goes
// to the store with the log's next copy (every flushInterval, and when the
// log closes), replacing any note not yet stored; Get returns it at once.
// A build's steps note what they learn a field at a time, and each write
// is a file replaced on the build's path.
func (rs *Records) NoteLater(ctx context.Context, r *Record) error {
	l := rs.liveLog(r.ID)
	if l == nil || r.Done() {
		return rs.Note(ctx, r)
	}
	c := *r
	l.mu.Lock()
	done := l.done
	if !done {
		l.note = &c
	}
	l.mu.Unlock()
	if done {
		return rs.Note(ctx, r)
	}
	return nil
}

// pendingNote returns a copy of the note of build id not yet stored.
func (rs *Records) pendingNote(id string) *Record {
	l := rs.liveLog(id)
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.note == nil {
		return nil
	}
	c := *l.note
	return &c
}

// remember keeps a copy of r if its build is done.
func (rs *Records) remember(r *Record) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r.Done() {
		c := *r
		rs.done[r.ID] = &c
	} else {
		delete(rs.done, r.ID)
	}
}

// ErrNoBuild is returned for an unknown build id.
var ErrNoBuild = errors.New("no such build")

// Get reads the record of build id.
func (rs *Records) Get(ctx context.Context, id string) (*Record, error) {
	if !validBuildID(id) {
		return nil, ErrNoBuild
	}
	rs.mu.Lock()
	known := rs.done[id]
	rs.mu.Unlock()
	if known != nil {
		c := *known
		return &c, nil
	}
	if r := rs.pendingNote(id); r != nil {
		return r, nil
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
	rs.remember(&r)
	return &r, nil
}

// List returns every record, newest first.
func (rs *Records) List(ctx context.Context) ([]*Record, error) {
	recs, _, err := rs.Find(ctx, Query{})
	return recs, err
}

// Query selects build records. Zero fields select everything.
type Query struct {
	Rule, Status string
	// Before, a build id, keeps only older builds: the next page starts
	// before the last id of the previous one.
	Before string
	Limit  int
}

// Find returns the records q selects, newest first, and whether more
// follow. Only records of unfinished builds are read from the store each
// time; a finished one is read once.
func (rs *Records) Find(ctx context.Context, q Query) (recs []*Record, more bool, err error) {
	if f, ok := rs.store.(recordFinder); ok {
		return f.FindRecords(ctx, q)
	}
	ids, err := rs.sortedIDs(ctx)
	if err != nil {
		return nil, false, err
	}
	for _, id := range ids {
		if q.Before != "" && id >= q.Before {
			continue
		}
		r, err := rs.Get(ctx, id)
		if err != nil {
			continue // half-created, or deleted since: nothing to show
		}
		if q.Rule != "" && r.Rule != q.Rule || q.Status != "" && r.Status != q.Status {
			continue
		}
		if q.Limit > 0 && len(recs) == q.Limit {
			return recs, true, nil
		}
		recs = append(recs, r)
	}
	return recs, false, nil
}

// sortedIDs lists the stored builds, newest first, and forgets the
// finished ones another kiln deleted.
func (rs *Records) sortedIDs(ctx context.Context) ([]string, error) {
	ids, err := rs.store.BuildIDs(ctx)
	if err != nil {
		return nil, err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	stored := make(map[string]bool, len(ids))
	for _, id := range ids {
		stored[id] = true
	}
	rs.mu.Lock()
	for id := range rs.done {
		if !stored[id] {
			delete(rs.done, id)
		}
	}
	rs.mu.Unlock()
	return ids, nil
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
