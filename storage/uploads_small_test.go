package storage

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

// A monolithic upload small enough to hold in memory is verified, stored
// and linked as any other; a wrong digest stores nothing.
func TestPutBlobSmallAndLarge(t *testing.T) {
	t.Parallel()
	gcStores(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		for _, size := range []int{0, 1000, smallBlobMax, smallBlobMax + 1} {
			content := bytes.Repeat([]byte{byte(size % 251)}, size)
			if size > 0 {
				content[size-1] = 'x'
			}
			d := digest.FromBytes(content)
			wrong := digest.FromString("something else")
			if _, err := s.PutBlob(ctx, "app", wrong, bytes.NewReader(content)); !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("%d bytes under a wrong digest: err %v, want ErrDigestMismatch", size, err)
			}
			if ok, err := s.HasBlob(ctx, wrong); err != nil || ok {
				t.Fatalf("%d bytes under a wrong digest: stored (%v, %v)", size, ok, err)
			}
			n, err := s.PutBlob(ctx, "app", d, bytes.NewReader(content))
			if err != nil || n != int64(size) {
				t.Fatalf("%d bytes: PutBlob = %d, %v", size, n, err)
			}
			// Again into another repository: linked there too.
			if _, err := s.PutBlob(ctx, "other", d, bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
			for _, repo := range []string{"app", "other"} {
				if got, err := s.BlobSize(ctx, repo, d); err != nil || got != int64(size) {
					t.Fatalf("%d bytes: size in %s %d, %v", size, repo, got, err)
				}
			}
			rc, err := s.OpenBlob(ctx, d, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("%d bytes: read back %d bytes, %v", size, len(got), err)
			}
		}
	})
}
