package storage

import (
	"testing"
)

// A mirror copy's _proxied marker is part of the layout: fsck must not
// report it, and --repair must not quarantine it.
func TestFsckKeepsProxiedMarker(t *testing.T) {
	s, _, _, _, _ := fsckStore(t)
	ctx := t.Context()
	pushImage(t, s, "mirror/library/nginx", "latest", "m", nil)
	if err := s.MarkProxied(ctx, "mirror/library/nginx"); err != nil {
		t.Fatal(err)
	}
	if r := runFsck(t, s, false); len(r.Problems) != 0 || len(r.Leftovers) != 0 {
		t.Fatalf("healthy store with a mirror copy: %d problems, %d leftovers", len(r.Problems), len(r.Leftovers))
	}
	runFsck(t, s, true)
	proxied, exists, err := s.IsProxied(ctx, "mirror/library/nginx")
	if err != nil || !proxied || !exists {
		t.Errorf("after repair: proxied %v exists %v err %v, want the marker kept", proxied, exists, err)
	}
}
