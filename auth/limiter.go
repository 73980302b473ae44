package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTracked bounds how many client addresses the failure limiter keeps
// apart; beyond it new addresses share one bucket, so a flood from many
// addresses costs no memory and still cannot make kiln run bcrypt freely.
const maxTracked = 1 << 16

// failureLimiter allows each client address perMinute failed logins a
// minute (refilled continuously). A password check reserves a failure
// before it runs and gives it back if the password was right, so
// concurrent attempts cannot get more checks than the allowance.
type failureLimiter struct {
	perMinute int
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	overflow  *bucket
	lastSweep time.Time
}

// bucket is one address's failures (as rate tokens) and the checks under
// way, each of which may become one more.
type bucket struct {
	failures *rate.Limiter
	pending  int
}

func newFailureLimiter(perMinute int) *failureLimiter {
	l := &failureLimiter{perMinute: perMinute, now: time.Now, buckets: map[string]*bucket{}}
	l.overflow = l.newBucket()
	return l
}

func (l *failureLimiter) newBucket() *bucket {
	return &bucket{failures: rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)}
}

// reserve admits one password check from addr if the failures it has left
// cover the checks already under way and this one; else it returns nil
// and how long until one more is allowed. An admitted check must be
// settled.
func (l *failureLimiter) reserve(addr string) (*bucket, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.bucketLocked(addr, now)
	missing := float64(b.pending) + 1 - b.failures.TokensAt(now)
	if missing > 0 {
		return nil, time.Duration(missing * 60 / float64(l.perMinute) * float64(time.Second))
	}
	b.pending++
	return b, 0
}

// settle ends a check reserve admitted; a failed one takes its token.
func (l *failureLimiter) settle(b *bucket, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b.pending--
	if failed {
		b.failures.ReserveN(l.now(), 1)
	}
}

// bucketLocked finds or makes addr's bucket. A sweep at most once a
// minute forgets buckets that have refilled and have no check under way:
// such a bucket is the same as none.
func (l *failureLimiter) bucketLocked(addr string, now time.Time) *bucket {
	if b, ok := l.buckets[addr]; ok {
		return b
	}
	if len(l.buckets) >= maxTracked || now.Sub(l.lastSweep) >= time.Minute {
		l.lastSweep = now
		for a, b := range l.buckets {
			if b.pending == 0 && b.failures.TokensAt(now) >= float64(l.perMinute) {
				delete(l.buckets, a)
			}
		}
	}
	if len(l.buckets) >= maxTracked {
		return l.overflow
	}
	b := l.newBucket()
	l.buckets[addr] = b
	return b
}
