package storage

import (
	"fmt"
	"testing"
)

func TestEventsOutboxKeepsOrderAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 5 {
		id, err := s.AppendEvent(t.Context(), fmt.Appendf(nil, "event %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := s.DeleteEvent(t.Context(), ids[1]); err != nil {
		t.Fatal(err)
	}
	// A new process's Store on the same directory sees what is left.
	reopened, err := NewFilesystem(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := reopened.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []int{0, 2, 3, 4}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i, n := range want {
		if got[i].ID != ids[n] || string(got[i].Content) != fmt.Sprintf("event %d", n) {
			t.Errorf("event %d = %s %q, want %s", i, got[i].ID, got[i].Content, ids[n])
		}
	}
	if err := reopened.DeleteEvent(t.Context(), ids[1]); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
	if err := reopened.DeleteEvent(t.Context(), "../repositories"); err == nil {
		t.Error("a path outside the outbox was accepted as an event id")
	}
}

func TestEventsEmptyOutbox(t *testing.T) {
	got, err := NewInMemory(Options{}).Events(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("Events = %v, %v; want none", got, err)
	}
}
