package storage

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// A chunked upload bigger than the 5 MiB part size, in chunks that are
// smaller than a part, not a multiple of it and larger than one, becomes an
// S3 multipart upload resumed at every PATCH, and the blob is exact.
func TestS3MultipartChunkedUpload(t *testing.T) {
	t.Parallel()
	serialS3(t)
	s := newS3Store(t, Options{})
	ctx := t.Context()
	const mib = 1 << 20
	// 3 MiB first: the second chunk rebuilds the too-small first part;
	// after 7 MiB the next chunk copies the object as part 1; 6 and 11 MiB
	// span whole parts plus a remainder.
	sizes := []int{3 * mib, 4 * mib, 6*mib + 123, 11 * mib, 1}
	var all []byte
	u, err := s.NewUpload(ctx, "multi")
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		chunk := randomBytes(n, uint64(i+1))
		got, err := s.AppendUpload(ctx, "multi", u.ID, int64(len(all)), bytes.NewReader(chunk))
		if err != nil {
			t.Fatalf("chunk %d (%d bytes): %v", i, n, err)
		}
		all = append(all, chunk...)
		if got.Size != int64(len(all)) {
			t.Fatalf("after chunk %d: size %d, want %d", i, got.Size, len(all))
		}
		if i == 2 {
			// A chunk that breaks off mid-body is not kept.
			if _, err := s.AppendUpload(ctx, "multi", u.ID, int64(len(all)), &failingReader{randomBytes(2*mib, 99)}); err == nil {
				t.Fatal("broken chunk accepted")
			}
		}
	}
	last := randomBytes(2*mib+7, 100)
	all = append(all, last...)
	d := digest.FromBytes(all)
	if _, err := s.FinishUpload(ctx, "multi", u.ID, int64(len(all)-len(last)), bytes.NewReader(last), d); err != nil {
		t.Fatal(err)
	}
	if n, err := s.BlobSize(ctx, "multi", d); err != nil || n != int64(len(all)) {
		t.Fatalf("BlobSize: %d %v, want %d", n, err, len(all))
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, all) {
		t.Fatalf("blob differs: %d bytes, digest %s", len(got), digest.FromBytes(got))
	}
	// Reading from an offset works too (resumed pulls).
	rc, err := s.OpenBlob(ctx, d, int64(len(all))-10)
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(tail, all[len(all)-10:]) {
		t.Errorf("tail from offset: %x", tail)
	}
	if entries, _ := s.driver.List(ctx, uploadsRoot); len(entries) != 0 {
		t.Errorf("leftover uploads: %v", entries)
	}
}

// Another Store on the same bucket and root (another kiln instance)
// continues a session, and the two take turns until it is finished.
func TestS3ResumeOnAnotherInstance(t *testing.T) {
	t.Parallel()
	serialS3(t)
	p := s3Params(t)
	a, err := NewS3(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewS3(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	u, err := a.NewUpload(ctx, "shared/repo")
	if err != nil {
		t.Fatal(err)
	}
	chunks := [][]byte{randomBytes(6<<20, 1), randomBytes(2<<20, 2), randomBytes(5<<20, 3)}
	stores := []*Store{a, b, a}
	var all []byte
	for i, c := range chunks {
		if _, err := stores[i].AppendUpload(ctx, "shared/repo", u.ID, int64(len(all)), bytes.NewReader(c)); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		all = append(all, c...)
	}
	got, err := b.GetUpload(ctx, "shared/repo", u.ID)
	if err != nil || got.Size != int64(len(all)) {
		t.Fatalf("b sees %+v %v, want size %d", got, err, len(all))
	}
	if _, err := b.AppendUpload(ctx, "shared/repo", u.ID, 3, strings.NewReader("x")); !errors.Is(err, ErrUploadOutOfOrder) {
		t.Errorf("out of order on b: %v", err)
	}
	final := []byte("the end")
	all = append(all, final...)
	d := digest.FromBytes(all)
	if _, err := b.FinishUpload(ctx, "shared/repo", u.ID, -1, bytes.NewReader(final), d); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"a": a, "b": b} {
		if got := readBlob(t, s, d); !bytes.Equal(got, all) {
			t.Errorf("%s: blob differs (%d bytes)", name, len(got))
		}
	}
	if _, err := a.GetUpload(ctx, "shared/repo", u.ID); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("finished session still open on a: %v", err)
	}
	// A store on another root of the same bucket sees none of it.
	other := newS3Store(t, Options{})
	if ok, err := other.HasBlob(ctx, d); ok || err != nil {
		t.Errorf("other root sees the blob: %v %v", ok, err)
	}
}

// BlobURL hands out a presigned URL that fetches the blob, ranges included.
func TestS3BlobURL(t *testing.T) {
	t.Parallel()
	serialS3(t)
	s := newS3Store(t, Options{})
	ctx := t.Context()
	content := randomBytes(300<<10, 7)
	d := digest.FromBytes(content)
	if _, err := s.PutBlob(ctx, "r", d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://kiln.example/v2/r/blobs/"+d.String(), nil)
	u, err := s.BlobURL(req, d)
	if err != nil || u == "" {
		t.Fatalf("BlobURL: %q %v", u, err)
	}
	if !strings.HasPrefix(u, s3Server.Endpoint+"/") {
		t.Errorf("URL %s is not on the S3 endpoint %s", u, s3Server.Endpoint)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
		t.Fatalf("GET presigned URL: %s, %d bytes (want %d)", resp.Status, len(got), len(content))
	}
	rreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	rreq.Header.Set("Range", "bytes=100-199")
	resp, err = http.DefaultClient.Do(rreq)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, content[100:200]) {
		t.Errorf("ranged GET: %s, %d bytes", resp.Status, len(got))
	}

	// Stores that cannot hand out URLs say so with "".
	fs, _ := NewFilesystem(t.TempDir(), Options{})
	mem := NewInMemory(Options{})
	for name, st := range map[string]*Store{"filesystem": fs, "inmemory": mem} {
		if _, err := st.PutBlob(ctx, "r", d, bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		if u, err := st.BlobURL(req, d); u != "" || err != nil {
			t.Errorf("%s: BlobURL %q %v, want empty", name, u, err)
		}
	}
}

// NewS3 fails at once on a bucket that does not exist.
func TestS3MissingBucket(t *testing.T) {
	t.Parallel()
	serialS3(t)
	p := s3Params(t)
	p.Bucket = "no-such-bucket-kiln"
	if _, err := NewS3(p, Options{}); err == nil {
		t.Error("NewS3 on a missing bucket succeeded")
	}
}

// Empty PATCHes (some clients send one before the data) leave the session
// as it was, on every store.
func TestEmptyChunks(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		u, err := s.NewUpload(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		var all []byte
		for i, c := range [][]byte{nil, randomBytes(1<<20, 1), nil, randomBytes(6<<20, 2), nil} {
			got, err := s.AppendUpload(ctx, "r", u.ID, int64(len(all)), bytes.NewReader(c))
			all = append(all, c...)
			if err != nil || got.Size != int64(len(all)) {
				t.Fatalf("chunk %d: %+v %v, want size %d", i, got, err, len(all))
			}
		}
		d := digest.FromBytes(all)
		if _, err := s.FinishUpload(ctx, "r", u.ID, -1, nil, d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readBlob(t, s, d), all) {
			t.Error("blob differs")
		}
	})
}
