package buildhook

import (
	"context"
	"sync"
	"time"
)

// fullPruneEvery is how often a build's end prunes every rule's records,
// not only its own: MaxAge also expires the records of rules that no
// longer build. Start prunes every rule too.
const fullPruneEvery = time.Hour

// pruneSchedule says when a build's end next prunes every rule.
type pruneSchedule struct {
	now  func() time.Time // nil: time.Now (tests set a clock)
	mu   sync.Mutex
	next time.Time
}

func (p *pruneSchedule) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// fullDone notes a prune of every rule at now.
func (p *pruneSchedule) fullDone(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = now.Add(fullPruneEvery)
}

// fullDue reports whether a prune of every rule is due at now; the one
// caller told so owns it, the others are not until fullPruneEvery later.
func (p *pruneSchedule) fullDue(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Before(p.next) {
		return false
	}
	p.next = now.Add(fullPruneEvery)
	return true
}

// prune applies the retention to every rule's records, and logs what it
// freed.
func (s *Service) prune(ctx context.Context) {
	now := s.pruning.clock()
	s.pruning.fullDone(now)
	s.logPruned(s.records.Prune(ctx, s.opts.Retention, now))
}

// pruneAfterBuild applies the retention after a build of rule ended: to
// rule's records, which that end changed, and to every rule's once per
// fullPruneEvery (read them all after every build, and a build's end
// pays for every record kiln holds).
func (s *Service) pruneAfterBuild(ctx context.Context, rule string) {
	now := s.pruning.clock()
	if s.pruning.fullDue(now) {
		s.logPruned(s.records.Prune(ctx, s.opts.Retention, now))
		return
	}
	s.logPruned(s.records.PruneRule(ctx, s.opts.Retention, rule, now))
}

func (s *Service) logPruned(n int, err error) {
	if err != nil {
		s.log.Warn("removing old build records", "err", err)
	}
	if n > 0 {
		s.log.Info("removed old build records and their logs", "count", n, "keep", s.opts.Retention.Keep, "max_age", s.opts.Retention.MaxAge)
	}
}
