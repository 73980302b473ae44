package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"kiln/storage"
)

// The hot paths of the API, through the whole handler (router, checks,
// store) without a network: go test -bench . -benchmem ./registry/

const benchManifestType = "application/vnd.oci.image.manifest.v1+json"

// benchStores runs f on a fresh handler over each store kind.
func benchStores(b *testing.B, f func(b *testing.B, h http.Handler)) {
	for _, kind := range []string{"inmemory", "filesystem"} {
		b.Run(kind, func(b *testing.B) {
			s := storage.NewInMemory(storage.Options{})
			if kind == "filesystem" {
				var err error
				if s, err = storage.NewFilesystem(b.TempDir(), storage.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			f(b, New(s, Options{DeleteEnabled: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
		})
	}
}

// benchDo serves one request and fails unless it got status.
func benchDo(b *testing.B, h http.Handler, method, path string, body []byte, status int, hdr ...string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != status {
		b.Fatalf("%s %s: %d %s, want %d", method, path, w.Code, w.Body.Bytes(), status)
	}
	return w
}

// benchImage pushes a config and a layer to repo and returns a manifest
// builder over them: each annotation value gives a distinct manifest.
func benchImage(b *testing.B, h http.Handler, repo string) func(note string) []byte {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := bytes.Repeat([]byte("layer "), 700)
	for _, c := range [][]byte{cfg, layer} {
		benchDo(b, h, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(c).String(), c, http.StatusCreated)
	}
	return func(note string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"` + benchManifestType + `",` +
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromBytes(cfg).String() + `","size":` + strconv.Itoa(len(cfg)) + `},` +
			`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + digest.FromBytes(layer).String() + `","size":` + strconv.Itoa(len(layer)) + `}],` +
			`"annotations":{"note":"` + note + `"}}`)
	}
}

// BenchmarkManifestGetByTag is the manifest GET of a pull: by tag, with
// the Accept header docker sends.
func BenchmarkManifestGetByTag(b *testing.B) {
	benchStores(b, func(b *testing.B, h http.Handler) {
		m := benchImage(b, h, "bench/app")("v1")
		benchDo(b, h, http.MethodPut, "/v2/bench/app/manifests/v1", m, http.StatusCreated, "Content-Type", benchManifestType)
		accept := benchManifestType + ", application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json"
		b.ReportAllocs()
		for b.Loop() {
			w := benchDo(b, h, http.MethodGet, "/v2/bench/app/manifests/v1", nil, http.StatusOK, "Accept", accept)
			if w.Body.Len() != len(m) {
				b.Fatalf("GET: %d bytes, want %d", w.Body.Len(), len(m))
			}
		}
	})
}

// BenchmarkBlobHead is the existence check clients make before each
// layer push.
func BenchmarkBlobHead(b *testing.B) {
	benchStores(b, func(b *testing.B, h http.Handler) {
		c := bytes.Repeat([]byte("blob "), 1000)
		path := "/v2/bench/app/blobs/" + digest.FromBytes(c).String()
		benchDo(b, h, http.MethodPost, "/v2/bench/app/blobs/uploads/?digest="+digest.FromBytes(c).String(), c, http.StatusCreated)
		b.ReportAllocs()
		for b.Loop() {
			benchDo(b, h, http.MethodHead, path, nil, http.StatusOK)
		}
	})
}

// BenchmarkManifestPut puts a distinct manifest to a new tag each time,
// so the repository grows by one tag per iteration.
func BenchmarkManifestPut(b *testing.B) {
	benchStores(b, func(b *testing.B, h http.Handler) {
		manifest := benchImage(b, h, "bench/app")
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			tag := "t" + strconv.Itoa(i)
			benchDo(b, h, http.MethodPut, "/v2/bench/app/manifests/"+tag, manifest(tag), http.StatusCreated, "Content-Type", benchManifestType)
			i++
		}
	})
}

// freshBlobs returns a buffer of size bytes and next, which makes it a blob
// never pushed before (its last 8 bytes are a counter) and returns its
// digest from a saved hash state, so a loop measures the server's hashing,
// not the client's.
func freshBlobs(b *testing.B, size int) (content []byte, next func() digest.Digest) {
	content = make([]byte, size)
	for i := range content {
		content[i] = byte(i * 7)
	}
	head := len(content) - 8
	hs := sha256.New()
	hs.Write(content[:head])
	state, err := hs.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	n := uint64(0)
	return content, func() digest.Digest {
		n++
		binary.LittleEndian.PutUint64(content[head:], n)
		hs := sha256.New()
		hs.(encoding.BinaryUnmarshaler).UnmarshalBinary(state)
		hs.Write(content[head:])
		return digest.NewDigestFromBytes(digest.SHA256, hs.Sum(nil))
	}
}

// BenchmarkBlobPush is a monolithic blob upload (POST ?digest= with the
// whole blob): receive, hash, verify, store. Each blob is new (freshBlobs).
func BenchmarkBlobPush(b *testing.B) {
	benchStores(b, func(b *testing.B, h http.Handler) {
		content, next := freshBlobs(b, 8<<20)
		b.SetBytes(int64(len(content)))
		b.ReportAllocs()
		for b.Loop() {
			d := next()
			benchDo(b, h, http.MethodPost, "/v2/bench/app/blobs/uploads/?digest="+d.String(), content, http.StatusCreated)
		}
	})
}

// BenchmarkBlobPushChunked is a chunked blob upload as docker and
// containerd send it: POST, 8 MiB PATCHes with Content-Range, PUT
// ?digest=. Each blob is new (its last 8 bytes are a counter).
func BenchmarkBlobPushChunked(b *testing.B) {
	const chunk = 8 << 20
	benchStores(b, func(b *testing.B, h http.Handler) {
		content, next := freshBlobs(b, 64<<20)
		b.SetBytes(int64(len(content)))
		b.ReportAllocs()
		for b.Loop() {
			d := next()
			loc := benchDo(b, h, http.MethodPost, "/v2/bench/app/blobs/uploads/", nil, http.StatusAccepted).Header().Get("Location")
			for off := 0; off < len(content); off += chunk {
				end := min(off+chunk, len(content))
				loc = benchDo(b, h, http.MethodPatch, loc, content[off:end], http.StatusAccepted,
					"Content-Type", "application/octet-stream",
					"Content-Range", strconv.Itoa(off)+"-"+strconv.Itoa(end-1)).Header().Get("Location")
			}
			sep := "?"
			if strings.Contains(loc, "?") {
				sep = "&"
			}
			benchDo(b, h, http.MethodPut, loc+sep+"digest="+d.String(), nil, http.StatusCreated)
		}
	})
}
