package registry

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

func TestBase(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		r := do(t, srv, "GET", "/v2/", nil)
		if r.status != 200 || r.header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Fatalf("GET /v2/: %d %v", r.status, r.header)
		}
	})
}

func TestBlobGetRanges(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		content := []byte("0123456789")
		d := pushBlob(t, srv, "a/b", content)
		for _, tc := range []struct {
			rng       string
			status    int
			body      string
			contRange string
		}{
			{"", 200, "0123456789", ""},
			{"bytes=2-5", 206, "2345", "bytes 2-5/10"},
			{"bytes=7-", 206, "789", "bytes 7-9/10"},
			{"bytes=-3", 206, "789", "bytes 7-9/10"},
			{"bytes=5-100", 206, "56789", "bytes 5-9/10"},
			{"bytes=10-", 416, "", "bytes */10"},
			{"bytes=5-2", 416, "", "bytes */10"},
		} {
			var hdr []string
			if tc.rng != "" {
				hdr = []string{"Range", tc.rng}
			}
			r := do(t, srv, "GET", "/v2/a/b/blobs/"+string(d), nil, hdr...)
			if r.status != tc.status || r.header.Get("Content-Range") != tc.contRange {
				t.Errorf("Range %q: %d %q, want %d %q", tc.rng, r.status, r.header.Get("Content-Range"), tc.status, tc.contRange)
			}
			if tc.status != 416 && string(r.body) != tc.body {
				t.Errorf("Range %q: body %q, want %q", tc.rng, r.body, tc.body)
			}
		}
		h := do(t, srv, "HEAD", "/v2/a/b/blobs/"+string(d), nil)
		if h.status != 200 || h.header.Get("Content-Length") != "10" || h.header.Get("Docker-Content-Digest") != string(d) ||
			h.header.Get("ETag") == "" || h.header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("HEAD: %d %v", h.status, h.header)
		}
		// The blob is linked into a/b only.
		if r := do(t, srv, "GET", "/v2/other/blobs/"+string(d), nil); r.status != 404 || r.errorCode() != "BLOB_UNKNOWN" {
			t.Errorf("GET from another repo: %d %s", r.status, r.body)
		}
	})
}

func TestChunkedUpload(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		content := []byte("hello, chunked world")
		d := digest.FromBytes(content)
		r := do(t, srv, "POST", "/v2/up/blobs/uploads/", nil)
		if r.status != 202 || r.header.Get("Location") == "" || r.header.Get("Docker-Upload-UUID") == "" {
			t.Fatalf("POST: %d %v", r.status, r.header)
		}
		loc := r.header.Get("Location")
		patch := func(rng string, body []byte) response {
			return do(t, srv, "PATCH", loc, body, "Content-Range", rng, "Content-Type", "application/octet-stream")
		}
		if r := patch("0-4", content[:5]); r.status != 202 || r.header.Get("Range") != "0-4" {
			t.Fatalf("PATCH 0-4: %d %v %s", r.status, r.header, r.body)
		}
		// Out of order, overlapping, and a gap all leave the session as it was.
		for _, rng := range []string{"10-14", "3-7", "0-4"} {
			if r := patch(rng, content[:5]); r.status != 416 || r.header.Get("Range") != "0-4" {
				t.Errorf("PATCH %s: %d %v", rng, r.status, r.header.Get("Range"))
			}
		}
		// A Content-Length that does not match the range is refused.
		if r := patch("5-9", content[5:12]); r.status != 400 || r.errorCode() != "SIZE_INVALID" {
			t.Errorf("PATCH with longer body: %d %s", r.status, r.body)
		}
		if r := do(t, srv, "GET", loc, nil); r.status != 204 || r.header.Get("Range") != "0-4" {
			t.Errorf("status: %d %v", r.status, r.header)
		}
		if r := patch("5-9", content[5:10]); r.status != 202 || r.header.Get("Range") != "0-9" {
			t.Fatalf("PATCH 5-9: %d %v", r.status, r.header)
		}
		// A wrong digest on PUT is refused.
		if r := do(t, srv, "PUT", loc+"?digest="+string(digest.FromString("x")), nil); r.status != 400 || r.errorCode() != "DIGEST_INVALID" {
			t.Errorf("PUT wrong digest: %d %s", r.status, r.body)
		}
		// The session is gone after a mismatch: start again and finish with a last chunk.
		loc = do(t, srv, "POST", "/v2/up/blobs/uploads/", nil).header.Get("Location")
		if r := patch("0-9", content[:10]); r.status != 202 {
			t.Fatalf("PATCH: %d", r.status)
		}
		if r := do(t, srv, "PUT", loc+"?digest="+string(d), content[10:]); r.status != 201 || r.header.Get("Docker-Content-Digest") != string(d) {
			t.Fatalf("PUT: %d %v %s", r.status, r.header, r.body)
		}
		if r := do(t, srv, "GET", "/v2/up/blobs/"+string(d), nil); !bytes.Equal(r.body, content) {
			t.Errorf("GET after chunked upload: %q", r.body)
		}
		if r := do(t, srv, "GET", loc, nil); r.status != 404 || r.errorCode() != "BLOB_UPLOAD_UNKNOWN" {
			t.Errorf("finished session still there: %d", r.status)
		}
	})
}

func TestStreamedUploadAndCancel(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		loc := do(t, srv, "POST", "/v2/s/blobs/uploads/", nil).header.Get("Location")
		if r := do(t, srv, "PATCH", loc, []byte("abc")); r.status != 202 || r.header.Get("Range") != "0-2" {
			t.Fatalf("streamed PATCH: %d %v", r.status, r.header)
		}
		if r := do(t, srv, "PATCH", loc, []byte("def")); r.status != 202 || r.header.Get("Range") != "0-5" {
			t.Fatalf("second streamed PATCH: %d %v", r.status, r.header)
		}
		if r := do(t, srv, "DELETE", loc, nil); r.status != 204 {
			t.Fatalf("DELETE session: %d", r.status)
		}
		if r := do(t, srv, "PATCH", loc, []byte("g")); r.status != 404 || r.errorCode() != "BLOB_UPLOAD_UNKNOWN" {
			t.Errorf("PATCH after cancel: %d %s", r.status, r.body)
		}
		// A session belongs to its repository.
		loc = do(t, srv, "POST", "/v2/s/blobs/uploads/", nil).header.Get("Location")
		id := loc[len("/v2/s/blobs/uploads/"):]
		if r := do(t, srv, "GET", "/v2/other/blobs/uploads/"+id, nil); r.status != 404 {
			t.Errorf("session seen from another repo: %d", r.status)
		}
		if r := do(t, srv, "GET", "/v2/s/blobs/uploads/..%2f..%2fetc", nil); r.status != 404 {
			t.Errorf("traversal as upload id: %d", r.status)
		}
	})
}

func TestMonolithicUploadMismatch(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, store *storage.Store) {
		wrong := digest.FromString("something else")
		r := do(t, srv, "POST", "/v2/m/blobs/uploads/?digest="+string(wrong), []byte("content"))
		if r.status != 400 || r.errorCode() != "DIGEST_INVALID" {
			t.Fatalf("mismatch: %d %s", r.status, r.body)
		}
		if ok, _ := store.HasBlob(t.Context(), wrong); ok {
			t.Error("blob stored under a wrong digest")
		}
		if ok, _ := store.HasBlob(t.Context(), digest.FromString("content")); ok {
			t.Error("unverified content stored")
		}
		for _, bad := range []string{"sha256:xyz", "md5:d41d8cd98f00b204e9800998ecf8427e", "nodigest"} {
			if r := do(t, srv, "POST", "/v2/m/blobs/uploads/?digest="+bad, []byte("x")); r.status != 400 || r.errorCode() != "DIGEST_INVALID" {
				t.Errorf("digest %q: %d %s", bad, r.status, r.body)
			}
			if r := do(t, srv, "GET", "/v2/m/blobs/"+bad, nil); r.status != 400 || r.errorCode() != "DIGEST_INVALID" {
				t.Errorf("GET digest %q: %d %s", bad, r.status, r.body)
			}
		}
		// sha512 is stored and served too.
		d := digest.SHA512.FromString("content512")
		if r := do(t, srv, "POST", "/v2/m/blobs/uploads/?digest="+string(d), []byte("content512")); r.status != 201 {
			t.Fatalf("sha512 upload: %d %s", r.status, r.body)
		}
		if r := do(t, srv, "GET", "/v2/m/blobs/"+string(d), nil); string(r.body) != "content512" {
			t.Errorf("sha512 get: %d %q", r.status, r.body)
		}
	})
}

func TestMount(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		d := pushBlob(t, srv, "src", []byte("shared layer"))
		r := do(t, srv, "POST", "/v2/dst/blobs/uploads/?mount="+string(d)+"&from=src", nil)
		if r.status != 201 || r.header.Get("Location") != "/v2/dst/blobs/"+string(d) {
			t.Fatalf("mount: %d %v", r.status, r.header)
		}
		if r := do(t, srv, "HEAD", "/v2/dst/blobs/"+string(d), nil); r.status != 200 {
			t.Errorf("mounted blob: %d", r.status)
		}
		// Without from: the store has it, so it mounts.
		if r := do(t, srv, "POST", "/v2/dst2/blobs/uploads/?mount="+string(d), nil); r.status != 201 {
			t.Errorf("mount without from: %d", r.status)
		}
		// From a repository that lacks it: a session instead.
		if r := do(t, srv, "POST", "/v2/dst3/blobs/uploads/?mount="+string(d)+"&from=nothere", nil); r.status != 202 || r.header.Get("Docker-Upload-UUID") == "" {
			t.Errorf("mount from repo without the blob: %d", r.status)
		}
		unknown := digest.FromString("never pushed")
		if r := do(t, srv, "POST", "/v2/dst3/blobs/uploads/?mount="+string(unknown), nil); r.status != 202 {
			t.Errorf("mount of unknown blob: %d", r.status)
		}
		if r := do(t, srv, "POST", "/v2/dst3/blobs/uploads/?mount="+string(d)+"&from=Bad..Name", nil); r.status != 400 || r.errorCode() != "NAME_INVALID" {
			t.Errorf("mount from invalid name: %d %s", r.status, r.body)
		}
	})
}

func TestBlobDelete(t *testing.T) {
	t.Parallel()
	stores(t, func(t *testing.T, srv *httptest.Server, _ *storage.Store) {
		d := pushBlob(t, srv, "del", []byte("to delete"))
		if r := do(t, srv, "DELETE", "/v2/del/blobs/"+string(d), nil); r.status != 202 {
			t.Fatalf("delete: %d", r.status)
		}
		if r := do(t, srv, "HEAD", "/v2/del/blobs/"+string(d), nil); r.status != 404 {
			t.Errorf("after delete: %d", r.status)
		}
		if r := do(t, srv, "DELETE", "/v2/del/blobs/"+string(d), nil); r.status != 404 || r.errorCode() != "BLOB_UNKNOWN" {
			t.Errorf("second delete: %d %s", r.status, r.body)
		}
	})
}

func TestDeletesDisabled(t *testing.T) {
	t.Parallel()
	s := storage.NewInMemory(storage.Options{})
	srv := httptest.NewServer(New(s, Options{DeleteEnabled: false}))
	defer srv.Close()
	d := pushBlob(t, srv, "nd", []byte("kept"))
	_, md := pushImage(t, srv, "nd", "v1")
	for _, p := range []string{"/v2/nd/blobs/" + string(d), "/v2/nd/manifests/" + string(md), "/v2/nd/manifests/v1"} {
		if r := do(t, srv, "DELETE", p, nil); r.status != http.StatusMethodNotAllowed || r.errorCode() != "UNSUPPORTED" {
			t.Errorf("DELETE %s: %d %s", p, r.status, r.body)
		}
	}
	if r := do(t, srv, "GET", "/v2/nd/manifests/v1", nil); r.status != 200 {
		t.Errorf("manifest gone after refused delete: %d", r.status)
	}
}
