package buildhook

import (
	"context"
	"errors"
	"fmt"

	"kiln/buildhook/build"
)

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
