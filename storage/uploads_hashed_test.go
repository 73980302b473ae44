package storage

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// PutHashedBlob trusts the caller's digest of the bytes, and nothing else:
// a blob whose sum is not its digest is not stored, whatever the bytes.
func TestPutHashedBlobStoresOnlyWhatSumVerifies(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		d := digest.FromString("content")
		wrongSum := func() digest.Digest { return digest.FromString("other") }
		_, err := s.PutHashedBlob(ctx, "r", d, strings.NewReader("content"), wrongSum)
		if _, fs := s.files.(fsFiles); fs {
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("sum mismatch: %v", err)
			}
			if ok, _ := s.HasBlob(ctx, d); ok {
				t.Fatal("blob stored although its sum did not verify")
			}
			if entries, _ := s.driver.List(ctx, uploadsRoot); len(entries) != 0 {
				t.Errorf("leftover uploads: %v", entries)
			}
		} else if err != nil {
			t.Fatal(err) // a driver's store hashes the bytes itself, and they match
		}

		// A reader that fails stores nothing.
		other := digest.FromString("cont")
		failing := io.MultiReader(strings.NewReader("cont"), errReader{})
		if _, err := s.PutHashedBlob(ctx, "r", other, failing, func() digest.Digest { return other }); err == nil {
			t.Fatal("a failed read was stored")
		}
		if ok, _ := s.HasBlob(ctx, other); ok {
			t.Fatal("a failed read is visible")
		}

		rightSum := func() digest.Digest { return d }
		n, err := s.PutHashedBlob(ctx, "r", d, strings.NewReader("content"), rightSum)
		if err != nil || n != int64(len("content")) {
			t.Fatalf("PutHashedBlob = %d, %v", n, err)
		}
		rc, err := s.driver.Reader(ctx, blobPath(d), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if b, _ := io.ReadAll(rc); string(b) != "content" {
			t.Errorf("stored %q", b)
		}
		if _, err := s.BlobSize(ctx, "r", d); err != nil {
			t.Error(err)
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("upstream broke") }
