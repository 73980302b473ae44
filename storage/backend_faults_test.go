package storage

import (
	"bytes"
	"errors"
	"path"
	"strings"
	"testing"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

// A backend that fails to write is an error to the caller, and leaves
// nothing half done behind it: no tag moved, no upload advanced.
func TestWriteFaultsReachCallers(t *testing.T) {
	t.Parallel()
	writes := map[string]func(t *testing.T, s *Store, fail func()) error{
		"PutManifest": func(t *testing.T, s *Store, fail func()) error {
			img := pushImage(t, s, "app", "v1", "a", nil)
			moved := 0
			s.onTagMoved = func(TagMove) { moved++ }
			m, err := s.GetManifest(t.Context(), "app", img.manifest)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseManifest(m.MediaType, m.Content)
			if err != nil {
				t.Fatal(err)
			}
			fail()
			err = s.PutManifest(t.Context(), "app", *m, parsed, "v2")
			if err != nil && moved != 0 {
				t.Errorf("%d tag moves reported for a failed write", moved)
			}
			return err
		},
		"MarkProxied": func(t *testing.T, s *Store, fail func()) error {
			fail()
			return s.MarkProxied(t.Context(), "app")
		},
		"AppendUpload": func(t *testing.T, s *Store, fail func()) error {
			u, err := s.NewUpload(t.Context(), "app")
			if err != nil {
				t.Fatal(err)
			}
			fail()
			_, err = s.AppendUpload(t.Context(), "app", u.ID, 0, strings.NewReader("chunk"))
			return err
		},
		"FinishUpload": func(t *testing.T, s *Store, fail func()) error {
			u, err := s.NewUpload(t.Context(), "app")
			if err != nil {
				t.Fatal(err)
			}
			fail()
			_, err = s.FinishUpload(t.Context(), "app", u.ID, 0, strings.NewReader("blob"), digest.FromString("blob"))
			return err
		},
		"DeleteTag": func(t *testing.T, s *Store, fail func()) error {
			pushImage(t, s, "app", "v1", "a", nil)
			fail()
			return s.DeleteTag(t.Context(), "app", "v1")
		},
		"GC": func(t *testing.T, s *Store, fail func()) error {
			gcBlob(t, s, "app", "orphan")
			fail()
			_, err := s.GC(t.Context(), GCOptions{}, nil)
			return err
		},
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			backendStores(t, func(t *testing.T, s *Store) {
				healthy := s.files
				if err := write(t, s, func() {}); err != nil {
					t.Fatalf("on a healthy backend: %v", err)
				}
				s.files = healthy
				err := write(t, s, func() { s.files = faultyFiles{healthy, "/"} })
				if !errors.Is(err, errFault) {
					t.Errorf("on a failing backend: err %v, want the backend's error", err)
				}
			})
		})
	}
}

// block puts a file where the store needs a directory: a fault in the
// stored tree itself, which each backend meets with its own code (the
// filesystem store's os calls, a driver's requests), not a wrapper's.
func block(t *testing.T, s *Store, dir string) {
	t.Helper()
	if err := s.driver.PutContent(t.Context(), dir, []byte("in the way")); err != nil {
		t.Fatal(err)
	}
}

// tempFiles returns the temporary files left in the store.
func tempFiles(t *testing.T, s *Store) []string {
	t.Helper()
	var left []string
	err := s.driver.Walk(t.Context(), "/", func(fi storagedriver.FileInfo) error {
		if name := path.Base(fi.Path()); isTempName(name) || isOwnTempName(name) {
			left = append(left, fi.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// A manifest PUT whose link cannot be written fails, and neither its tag
// nor a temporary file becomes visible: on the filesystem nothing at all
// is renamed into place, through a driver the files before the link may
// be (they are harmless without it).
func TestManifestWriteFaultInsideBackend(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		src := pushImage(t, s, "app", "v1", "a", nil)
		m, err := s.GetManifest(ctx, "app", src.manifest)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := ParseManifest(m.MediaType, m.Content)
		if err != nil {
			t.Fatal(err)
		}
		moved := 0
		s.onTagMoved = func(TagMove) { moved++ }
		block(t, s, path.Dir(manifestLinkPath("other", src.manifest)))
		if err := s.PutManifest(ctx, "other", *m, parsed, "v1"); err == nil {
			t.Fatal("PutManifest succeeded with its link's directory blocked")
		}
		if moved != 0 {
			t.Errorf("%d tag moves reported for a failed PUT", moved)
		}
		if d, err := s.ResolveTag(ctx, "other", "v1"); !errors.Is(err, ErrTagUnknown) {
			t.Errorf("tag of the failed PUT: %s, %v; want ErrTagUnknown", d, err)
		}
		if left := tempFiles(t, s); len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})
}

// An upload chunk the backend cannot store fails, and the session stays
// where it was, ready for the client to send the chunk again.
func TestUploadWriteFaultInsideBackend(t *testing.T) {
	t.Parallel()
	backendStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, err := s.NewUpload(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		// A directory where the data goes.
		block(t, s, uploadDataPath(u.ID)+"/x")
		if _, err := s.AppendUpload(ctx, "app", u.ID, 0, bytes.NewReader([]byte("chunk"))); err == nil {
			t.Fatal("AppendUpload succeeded with its data blocked")
		}
		got, err := s.GetUpload(ctx, "app", u.ID)
		if err != nil || got.Size != 0 {
			t.Errorf("session after the failed chunk: %+v, %v; want size 0", got, err)
		}
	})
}
