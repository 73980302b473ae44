package storage

import (
	"errors"
	"slices"
	"testing"
)

func TestBuildRecordsAndLogs(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if ids, err := s.BuildIDs(ctx); err != nil || len(ids) != 0 {
			t.Fatalf("empty store: ids %v, err %v", ids, err)
		}
		if _, err := s.BuildRecord(ctx, "b1"); !errors.Is(err, ErrBuildUnknown) {
			t.Fatalf("unknown record: err %v, want ErrBuildUnknown", err)
		}
		if err := s.PutBuildRecord(ctx, "b1", []byte(`{"id":"b1"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BuildLog(ctx, "b1"); !errors.Is(err, ErrBuildUnknown) {
			t.Fatalf("queued build's log: err %v, want ErrBuildUnknown", err)
		}
		if err := s.PutBuildLog(ctx, "b1", []byte("step 1\n")); err != nil {
			t.Fatal(err)
		}
		if err := s.PutBuildRecord(ctx, "b2", []byte(`{"id":"b2"}`)); err != nil {
			t.Fatal(err)
		}
		if b, err := s.BuildRecord(ctx, "b1"); err != nil || string(b) != `{"id":"b1"}` {
			t.Errorf("record: %q %v", b, err)
		}
		if b, err := s.BuildLog(ctx, "b1"); err != nil || string(b) != "step 1\n" {
			t.Errorf("log: %q %v", b, err)
		}
		// A follower reads what is new: from an offset, nothing at or past the end.
		for offset, want := range map[int64]string{0: "step 1\n", 5: "1\n", 7: "", 100: ""} {
			if b, err := s.BuildLogFrom(ctx, "b1", offset); err != nil || string(b) != want {
				t.Errorf("log from %d: %q %v, want %q", offset, b, err, want)
			}
		}
		if _, err := s.BuildLogFrom(ctx, "b2", 0); !errors.Is(err, ErrBuildUnknown) {
			t.Errorf("log from 0 of a build with none: err %v, want ErrBuildUnknown", err)
		}
		if _, err := s.BuildLogFrom(ctx, "../b1", 0); !errors.Is(err, ErrBuildUnknown) {
			t.Errorf("log of ../b1: err %v, want ErrBuildUnknown", err)
		}
		ids, err := s.BuildIDs(ctx)
		slices.Sort(ids)
		if err != nil || !slices.Equal(ids, []string{"b1", "b2"}) {
			t.Errorf("ids %v, err %v", ids, err)
		}
		// Existing stores keep working: the files are where they always were.
		if b, err := s.driver.GetContent(ctx, "/builds/b1/record"); err != nil || string(b) != `{"id":"b1"}` {
			t.Errorf("/builds/b1/record: %q %v", b, err)
		}
		if b, err := s.driver.GetContent(ctx, "/builds/b1/log"); err != nil || string(b) != "step 1\n" {
			t.Errorf("/builds/b1/log: %q %v", b, err)
		}
		// A running build's note replaces the record, read back the same way.
		if err := s.NoteBuildRecord(ctx, "b2", []byte(`{"id":"b2","status":"running"}`)); err != nil {
			t.Fatal(err)
		}
		if b, err := s.BuildRecord(ctx, "b2"); err != nil || string(b) != `{"id":"b2","status":"running"}` {
			t.Errorf("noted record: %q %v", b, err)
		}
		for _, id := range []string{"", "../x", "a/b", ".hidden"} {
			if err := s.NoteBuildRecord(ctx, id, nil); !errors.Is(err, ErrBuildUnknown) {
				t.Errorf("NoteBuildRecord(%q): err %v, want ErrBuildUnknown", id, err)
			}
			if err := s.PutBuildRecord(ctx, id, nil); !errors.Is(err, ErrBuildUnknown) {
				t.Errorf("PutBuildRecord(%q): err %v, want ErrBuildUnknown", id, err)
			}
			if _, err := s.BuildRecord(ctx, id); !errors.Is(err, ErrBuildUnknown) {
				t.Errorf("BuildRecord(%q): err %v, want ErrBuildUnknown", id, err)
			}
		}
	})
}

func TestAdoptions(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if got, err := s.Adoptions(ctx); err != nil || len(got) != 0 {
			t.Fatalf("empty store: %v %v", got, err)
		}
		if err := s.PutAdoption(ctx, "team/app", "v1", []byte("a")); err != nil {
			t.Fatal(err)
		}
		if err := s.PutAdoption(ctx, "tools", "latest", []byte("b")); err != nil {
			t.Fatal(err)
		}
		// Existing stores keep working: the path is the one kiln always used.
		if b, err := s.driver.GetContent(ctx, "/autorebase/team/app/_tags/v1"); err != nil || string(b) != "a" {
			t.Errorf("/autorebase/team/app/_tags/v1: %q %v", b, err)
		}
		// A file the layout does not name comes back without a key.
		if err := s.driver.PutContent(ctx, "/autorebase/junk", []byte("c")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Adoptions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, a := range got {
			keys = append(keys, a.Repo+":"+a.Tag+"="+string(a.Content))
		}
		slices.Sort(keys)
		if want := []string{":=c", "team/app:v1=a", "tools:latest=b"}; !slices.Equal(keys, want) {
			t.Errorf("adoptions %q, want %q", keys, want)
		}
		if err := s.DeleteAdoption(ctx, "team/app", "v1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAdoption(ctx, "team/app", "v1"); err != nil {
			t.Errorf("deleting a missing adoption: %v", err)
		}
		if got, _ := s.Adoptions(ctx); len(got) != 2 {
			t.Errorf("after delete: %d adoptions, want 2", len(got))
		}
	})
}

// A noted record is made durable by SyncBuildRecord, on every backend; an
// unknown build has nothing to sync.
func TestSyncBuildRecord(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if err := s.SyncBuildRecord(ctx, "b1"); !errors.Is(err, ErrBuildUnknown) {
			t.Fatalf("syncing an unknown build: err %v, want ErrBuildUnknown", err)
		}
		if err := s.SyncBuildRecord(ctx, "../b1"); !errors.Is(err, ErrBuildUnknown) {
			t.Fatalf("syncing an invalid id: err %v, want ErrBuildUnknown", err)
		}
		if err := s.NoteBuildRecord(ctx, "b1", []byte(`{"id":"b1"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.SyncBuildRecord(ctx, "b1"); err != nil {
			t.Fatal(err)
		}
		if b, err := s.BuildRecord(ctx, "b1"); err != nil || string(b) != `{"id":"b1"}` {
			t.Fatalf("record %q, %v", b, err)
		}
	})
}
