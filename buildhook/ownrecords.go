package buildhook

import "sync"

// ownRecords holds the latest record of each build this kiln queued and
// has not finished, as it last wrote it. A running build changes its
// record a field at a time (status, builder, inputs, result); reading it
// back from the store before each change would cost a file read and a
// decode on the build's path. Only a single kiln keeps them: in a cluster
// another instance may change a record (a takeover).
type ownRecords struct {
	mu   sync.Mutex
	byID map[string]Record
}

// get returns a copy of the record of build id, if held.
func (o *ownRecords) get(id string) (*Record, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.byID[id]
	return &r, ok
}

// put holds a copy of r, or forgets it once its build is done.
func (o *ownRecords) put(r *Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Done() {
		delete(o.byID, r.ID)
		return
	}
	if o.byID == nil {
		o.byID = map[string]Record{}
	}
	o.byID[r.ID] = *r
}
