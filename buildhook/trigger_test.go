package buildhook

import "kiln/storage"

// newTriggeredStore returns an in-memory store whose tag moves go to the
// service given the returned TagMoves.
func newTriggeredStore() (*storage.Store, *TagMoves) {
	moves := new(TagMoves)
	return storage.NewInMemory(storage.Options{OnTagMoved: moves.TagMoved}), moves
}
