package storage

import (
	"bytes"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestUsage(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		if n, b, err := s.Usage(ctx); err != nil || n != 0 || b != 0 {
			t.Fatalf("empty store: %d blobs, %d bytes, %v", n, b, err)
		}
		a, c := []byte("first blob"), []byte("second, longer blob")
		for _, content := range [][]byte{a, c, a} { // a twice: stored once
			if _, err := s.PutBlob(ctx, "usage", digest.FromBytes(content), bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
		}
		// Neither an upload in progress, a leftover temporary file nor a
		// blob in the GC trash counts.
		u, err := s.NewUpload(ctx, "usage")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendUpload(ctx, "usage", u.ID, 0, bytes.NewReader([]byte("partial"))); err != nil {
			t.Fatal(err)
		}
		tmp := blobPath(digest.FromBytes(c)) + ".1234.tmp"
		if err := s.driver.PutContent(ctx, tmp, []byte("torn write")); err != nil {
			t.Fatal(err)
		}
		if err := s.driver.PutContent(ctx, trashBlobPath(digest.FromString("gone")), []byte("trashed")); err != nil {
			t.Fatal(err)
		}
		n, b, err := s.Usage(ctx)
		if err != nil || n != 2 || b != int64(len(a)+len(c)) {
			t.Fatalf("Usage = %d blobs, %d bytes, %v; want 2, %d", n, b, err, len(a)+len(c))
		}
	})
}
