package buildhook

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"kiln/buildhook/build"
)

// dispatch is what both queues (Queue, SharedQueue) keep to run their
// dispatcher: its wake-up, its goroutines, the lock that guards it and
// the rest of the queue's state, and the idle signal. Call init first.
type dispatch struct {
	kick chan struct{} // wakes the dispatcher; buffered 1
	wg   sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool
	idle    idleSignal
}

func (d *dispatch) init() {
	d.kick = make(chan struct{}, 1)
	d.idle = newIdleSignal()
}

// signal wakes the dispatcher; it never waits.
func (d *dispatch) signal() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// start marks the dispatcher started and counts its n goroutines; false
// when it already was.
func (d *dispatch) start(n int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return false
	}
	d.started = true
	d.wg.Add(n)
	return true
}

// Wait returns when the dispatcher has stopped (after Start's context
// ended) and every build it started has returned. Without Start it
// returns at once.
func (d *dispatch) Wait() { d.wg.Wait() }

// Idle returns a channel closed while the queue has nothing to do (see
// each queue's doc for what it counts). Get a new one after queueing more.
func (d *dispatch) Idle() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.idle.ch
}

// WaitIdle waits until the queue has nothing to do, or ctx ends.
func (d *dispatch) WaitIdle(ctx context.Context) error {
	select {
	case <-d.Idle():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idleSignal is a channel closed while its owner has nothing to do, for
// waiters (WaitIdle); the owner's lock guards it. The zero value is busy;
// newIdleSignal starts idle.
type idleSignal struct {
	ch     chan struct{}
	closed bool
}

func newIdleSignal() idleSignal {
	ch := make(chan struct{})
	close(ch)
	return idleSignal{ch: ch, closed: true}
}

// busy makes waiters wait again.
func (s *idleSignal) busy() {
	if s.closed {
		s.ch = make(chan struct{})
		s.closed = false
	}
}

// idle lets every waiter go.
func (s *idleSignal) idle() {
	if !s.closed {
		close(s.ch)
		s.closed = true
	}
}

// runHook calls a queue's Run hook, turning a panic into the build's error.
func runHook(ctx context.Context, run func(context.Context, *build.Job) error, job *build.Job) (err error) {
	if run == nil {
		return errors.New("build queue has no Run hook")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("build panicked: %v", r)
		}
	}()
	return run(ctx, job)
}
