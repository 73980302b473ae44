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
// minute (refilled continuously). Only failures take tokens.
type failureLimiter struct {
	perMinute int
	now       func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	overflow  *rate.Limiter
	lastSweep time.Time
}

func newFailureLimiter(perMinute int) *failureLimiter {
	l := &failureLimiter{perMinute: perMinute, now: time.Now, buckets: map[string]*rate.Limiter{}}
	l.overflow = l.newBucket()
	return l
}

func (l *failureLimiter) newBucket() *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)
}

// blocked reports whether addr has used up its failures, and if so how
// long until it may try again.
func (l *failureLimiter) blocked(addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(addr, false)
	if b == nil {
		return false, 0
	}
	now := l.now()
	if b.TokensAt(now) >= 1 {
		return false, 0
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return true, wait
}

// failed takes one token from addr's bucket.
func (l *failureLimiter) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bucketLocked(addr, true).AllowN(l.now(), 1)
}

// bucketLocked finds addr's bucket, making one if create is set. A sweep
// at most once a minute forgets buckets that have refilled: a full bucket
// is the same as none.
func (l *failureLimiter) bucketLocked(addr string, create bool) *rate.Limiter {
	if b, ok := l.buckets[addr]; ok {
		return b
	}
	if !create {
		if len(l.buckets) >= maxTracked {
			return l.overflow
		}
		return nil
	}
	now := l.now()
	if len(l.buckets) >= maxTracked || now.Sub(l.lastSweep) >= time.Minute {
		l.lastSweep = now
		for a, b := range l.buckets {
			if b.TokensAt(now) >= float64(l.perMinute) {
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
