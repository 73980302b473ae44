package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// PullLog remembers when each manifest of a repository was last pulled,
// for eviction and retention. A pull costs no write: Note keeps the time
// in memory, and Flush merges what was noted into one small file per
// repository that was pulled. Several kilns on one store merge by taking
// the later time; one losing a race to another's flush loses at most a
// few minutes of recency, never a manifest.
type PullLog struct {
	store *Store
	now   func() time.Time
	mu    sync.Mutex
	// pending are the pulls noted since the last flush: repository ->
	// manifest -> Unix milliseconds (one image pulled right after another
	// must still be the more recent).
	pending map[string]map[digest.Digest]int64
}

// NewPullLog returns the pull log of store.
func NewPullLog(store *Store) *PullLog {
	return &PullLog{store: store, now: time.Now, pending: map[string]map[digest.Digest]int64{}}
}

// Note records that a client pulled manifest d of repo now.
func (l *PullLog) Note(repo string, d digest.Digest) {
	t := l.now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.pending[repo]
	if m == nil {
		m = map[digest.Digest]int64{}
		l.pending[repo] = m
	}
	m[d] = t
}

// Flush writes the pulls noted since the last flush. Entries of manifests
// the repository no longer holds are dropped, so a file stays as small as
// the repository. What fails to be written is kept for the next flush.
func (l *PullLog) Flush(ctx context.Context) error {
	l.mu.Lock()
	pending := l.pending
	l.pending = map[string]map[digest.Digest]int64{}
	l.mu.Unlock()
	var firstErr error
	for repo, noted := range pending {
		if err := l.merge(ctx, repo, noted); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("pull times of %s: %w", repo, err)
			}
			l.mu.Lock()
			for d, t := range noted {
				if m := l.pending[repo]; m == nil {
					l.pending[repo] = map[digest.Digest]int64{d: t}
				} else if m[d] < t {
					m[d] = t
				}
			}
			l.mu.Unlock()
		}
	}
	return firstErr
}

func (l *PullLog) merge(ctx context.Context, repo string, noted map[digest.Digest]int64) error {
	stored, err := l.store.storedPulls(ctx, repo)
	if err != nil {
		return err
	}
	for d, t := range noted {
		if stored[d] < t {
			stored[d] = t
		}
	}
	for d := range stored {
		held, err := l.store.exists(ctx, manifestLinkPath(repo, d))
		if err != nil {
			return err
		}
		if !held {
			delete(stored, d)
		}
	}
	if len(stored) == 0 {
		return nil // a pull of something deleted since: nothing to keep
	}
	b, err := json.Marshal(stored)
	if err != nil {
		return err
	}
	return l.store.putContent(ctx, pullsPath(repo), b)
}

// LastPulled returns when each manifest of repo was last pulled, as far
// as this kiln knows: what was flushed, by any kiln, and what it noted
// since. A manifest never pulled is absent.
func (l *PullLog) LastPulled(ctx context.Context, repo string) (map[digest.Digest]time.Time, error) {
	stored, err := l.store.storedPulls(ctx, repo)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	for d, t := range l.pending[repo] {
		if stored[d] < t {
			stored[d] = t
		}
	}
	l.mu.Unlock()
	out := make(map[digest.Digest]time.Time, len(stored))
	for d, t := range stored {
		out[d] = time.UnixMilli(t)
	}
	return out, nil
}

// storedPulls reads repo's pull times; an unreadable file counts as empty:
// it is a hint, rewritten by the next flush.
func (s *Store) storedPulls(ctx context.Context, repo string) (map[digest.Digest]int64, error) {
	b, err := s.driver.GetContent(ctx, pullsPath(repo))
	if isNotFound(err) {
		return map[digest.Digest]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	stored := map[digest.Digest]int64{}
	if json.Unmarshal(b, &stored) != nil {
		return map[digest.Digest]int64{}, nil
	}
	for d := range stored {
		if d.Validate() != nil {
			delete(stored, d)
		}
	}
	return stored, nil
}
