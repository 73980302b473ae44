package buildhook

import "testing"

func TestOwnRecordsHoldCopiesUntilDone(t *testing.T) {
	var o ownRecords
	if _, ok := o.get("b1"); ok {
		t.Fatal("an empty set holds b1")
	}
	o.put(&Record{ID: "b1", Status: StatusQueued})
	r, ok := o.get("b1")
	if !ok || r.Status != StatusQueued {
		t.Fatalf("got %+v, %v", r, ok)
	}
	r.Status = StatusRunning // a change not put back
	if again, _ := o.get("b1"); again.Status != StatusQueued {
		t.Errorf("a caller's change reached the held record: %s", again.Status)
	}
	o.put(&Record{ID: "b1", Status: StatusSucceeded})
	if _, ok := o.get("b1"); ok {
		t.Error("a finished build's record is still held")
	}
}
