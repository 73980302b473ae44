package buildhook

import (
	"sync/atomic"

	"kiln/storage"
)

// TagMoves carries a store's tag moves to the Service built on that
// store. The service reads and records through the store, so it is built
// after it, while the store takes its listener when it is built: the
// store is built with TagMoved as its Options.OnTagMoved, and NewService
// attaches itself through ServiceOptions.TagMoves. Moves before that
// start nothing (no service, no rules); a later service on the same store
// (a restart) takes over from the one before. Delivery is synchronous: a
// build's own tag moves reach the queue before the build returns, which
// is what lets a cascade build each level once (see QueueHooks.Run).
type TagMoves struct {
	service atomic.Pointer[Service]
}

// TagMoved is the store's listener: it hands m to the attached service.
func (t *TagMoves) TagMoved(m storage.TagMove) {
	if svc := t.service.Load(); svc != nil {
		svc.TagMoved(m)
	}
}
