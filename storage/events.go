package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"sort"
	"sync"
	"time"
)

// StoredEvent is one entry of the outbox: an event (JSON, the caller's)
// not yet delivered everywhere, under an id that sorts in the order the
// events were appended.
type StoredEvent struct {
	ID      string
	Content []byte
}

// eventClock hands out strictly increasing times, so two events appended
// in the same nanosecond by this process still sort in order.
var eventClock struct {
	sync.Mutex
	last int64
}

func nextEventTime() int64 {
	eventClock.Lock()
	defer eventClock.Unlock()
	t := time.Now().UnixNano()
	if t <= eventClock.last {
		t = eventClock.last + 1
	}
	eventClock.last = t
	return t
}

// An event id is the append time in nanoseconds, zero-padded so ids sort as
// numbers, then random bits so instances sharing the store never collide.
const eventIDLen = 19 + 1 + 16

func newEventID() (string, error) {
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%019d-%s", nextEventTime(), hex.EncodeToString(r[:])), nil
}

func validEventID(id string) bool {
	if len(id) != eventIDLen || id[19] != '-' {
		return false
	}
	for i, c := range id {
		if i == 19 {
			continue
		}
		if (c < '0' || c > '9') && (i < 19 || c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// AppendEvent writes content to the outbox, durably before it returns,
// and returns its id.
func (s *Store) AppendEvent(ctx context.Context, content []byte) (string, error) {
	id, err := newEventID()
	if err != nil {
		return "", err
	}
	if err := s.files.writeInOrder(ctx, []smallFile{{eventPath(id), content}}); err != nil {
		return "", err
	}
	return id, nil
}

// Events returns the outbox, oldest first.
func (s *Store) Events(ctx context.Context) ([]StoredEvent, error) {
	entries, err := s.driver.List(ctx, eventsRoot)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, p := range entries {
		if id, ok := parseEventPath(path.Clean(p)); ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := make([]StoredEvent, 0, len(ids))
	for _, id := range ids {
		b, err := s.driver.GetContent(ctx, eventPath(id))
		if isNotFound(err) {
			continue // delivered meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, StoredEvent{ID: id, Content: b})
	}
	return out, nil
}

// DeleteEvent takes a delivered event out of the outbox; none is no error.
func (s *Store) DeleteEvent(ctx context.Context, id string) error {
	if !validEventID(id) {
		return fmt.Errorf("invalid event id %q", id)
	}
	err := s.driver.Delete(ctx, eventPath(id))
	if isNotFound(err) {
		return nil
	}
	return err
}
