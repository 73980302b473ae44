package buildhook

import (
	"sync/atomic"

	"kiln/storage"
)

// buildTrigger carries a test store's tag moves to the service a test
// starts on it: the service reads through the store, so it is built after
// it, and a restart points the trigger at the next service.
type buildTrigger struct {
	service atomic.Pointer[Service]
}

// newTriggeredStore returns an in-memory store whose tag moves go to the
// returned trigger.
func newTriggeredStore() (*storage.Store, *buildTrigger) {
	trigger := &buildTrigger{}
	return storage.NewInMemory(storage.Options{OnTagMoved: trigger.tagMoved}), trigger
}

func (b *buildTrigger) tagMoved(m storage.TagMove) {
	if svc := b.service.Load(); svc != nil {
		svc.TagMoved(m)
	}
}
