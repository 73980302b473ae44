package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// escapeMarker is part of every hostile name, so that a file created from
// one is recognisable wherever it lands.
const escapeMarker = "kilnescape"

// hostileNames are entry names that must never appear outside the store's
// root because of these tests.
var hostileNames = []string{"etc", "passwd", "x", "tmp", "shadow", escapeMarker}

// TestHostileRequests sends a table of hostile requests to the running
// kiln: each gets the expected 4xx, nothing is written, the server keeps
// answering, and no file appears outside its data directory.
func TestHostileRequests(t *testing.T) {
	reg := needRegistry(t)
	repo := reg.Repo("hostile")
	before := outsideEntries(t, reg)

	// A config blob, so that the manifests below can be valid but for the
	// part under test.
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cfgDigest := sha256Digest(cfg)
	pushBlobMonolithic(t, reg, repo, cfg)
	layer := []byte("hostile layer")
	layerDigest := sha256Digest(layer)
	pushBlobMonolithic(t, reg, repo, layer)
	tagsBefore := listTags(t, reg, repo)

	unknown := sha256Digest([]byte("never pushed " + reg.RunID))
	okManifest := imageManifest(cfgDigest, len(cfg), nil)

	type hostileCase struct {
		name   string
		method string
		target string // raw request-target, sent as is
		header map[string]string
		body   []byte
		status int
		code   string // expected error code; "" when the body is not checked
		// written is a request-target that must answer 404 afterwards.
		written string
	}
	r := "/v2/" + repo
	cases := []hostileCase{
		// Path traversal in names.
		{name: "dotdot name", method: "PUT", target: "/v2/../../" + escapeMarker + "/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "dotdot inside name", method: "PUT", target: r + "/../../../" + escapeMarker + "/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "encoded dotdot name", method: "PUT", target: "/v2/%2e%2e/%2e%2e/" + escapeMarker + "/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "encoded slash dotdot name", method: "PUT", target: "/v2/" + repo + "%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f" + escapeMarker + "/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "absolute name", method: "PUT", target: "/v2//etc/passwd/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "encoded absolute name", method: "PUT", target: "/v2/%2fetc%2fpasswd/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "NUL in name", method: "PUT", target: "/v2/" + escapeMarker + "%00x/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "uppercase name", method: "PUT", target: "/v2/" + strings.ToUpper(escapeMarker) + "/manifests/v1", body: okManifest, header: ctOCI, status: 400, code: "NAME_INVALID"},
		{name: "dotdot name upload", method: "POST", target: "/v2/../" + escapeMarker + "/blobs/uploads/?digest=" + sha256Digest([]byte("x")), body: []byte("x"), status: 400, code: "NAME_INVALID"},
		{name: "encoded dotdot name upload", method: "POST", target: "/v2/%2e%2e%2f%2e%2e%2f" + escapeMarker + "/blobs/uploads/", status: 400, code: "NAME_INVALID"},
		{name: "dotdot name tags", method: "GET", target: "/v2/../../etc/tags/list", status: 400, code: "NAME_INVALID"},
		// Path traversal in references and digests. An encoded slash in
		// the last segment makes the path match no endpoint: 404.
		{name: "dotdot tag", method: "PUT", target: r + "/manifests/..", body: okManifest, header: ctOCI, status: 400, code: "MANIFEST_INVALID"},
		{name: "NUL in tag", method: "PUT", target: r + "/manifests/v1%00x", body: okManifest, header: ctOCI, status: 400, code: "MANIFEST_INVALID", written: r + "/manifests/v1"},
		{name: "encoded slash in tag", method: "PUT", target: r + "/manifests/..%2f..%2f" + escapeMarker, body: okManifest, header: ctOCI, status: 404},
		{name: "dotdot digest manifest", method: "PUT", target: r + "/manifests/sha256:..%2f..%2f" + escapeMarker, body: okManifest, header: ctOCI, status: 404},
		{name: "dotdot digest blob", method: "GET", target: r + "/blobs/sha256:..", status: 400, code: "DIGEST_INVALID"},
		{name: "encoded dotdot digest blob", method: "GET", target: r + "/blobs/sha256:%2e%2e%2f%2e%2e%2fetc%2fpasswd", status: 404},
		{name: "NUL in digest", method: "HEAD", target: r + "/blobs/sha256:%00" + strings.Repeat("0", 63), status: 400},
		{name: "absolute digest", method: "GET", target: r + "/blobs/%2fetc%2fpasswd", status: 404},
		{name: "dotdot digest upload", method: "POST", target: r + "/blobs/uploads/?digest=sha256:../../" + escapeMarker, body: []byte("x"), status: 400, code: "DIGEST_INVALID"},
		{name: "dotdot mount digest", method: "POST", target: r + "/blobs/uploads/?mount=sha256:../../" + escapeMarker + "&from=../../etc", status: 400, code: "DIGEST_INVALID"},
		{name: "dotdot upload id", method: "PATCH", target: r + "/blobs/uploads/..", body: []byte("x"), status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
		{name: "encoded dotdot upload id", method: "PUT", target: r + "/blobs/uploads/%2e%2e%2f%2e%2e%2f" + escapeMarker + "?digest=" + sha256Digest([]byte("x")), body: []byte("x"), status: 404},
		{name: "absolute upload id", method: "DELETE", target: r + "/blobs/uploads/%2fetc%2fpasswd", status: 404},
		// Length limits: 256-character names and 129-character tags.
		{name: "256-char name", method: "POST", target: "/v2/" + nameOfLength(repo, 256) + "/blobs/uploads/?digest=" + sha256Digest([]byte("x")), body: []byte("x"), status: 400, code: "NAME_INVALID"},
		{name: "129-char tag", method: "PUT", target: r + "/manifests/" + strings.Repeat("t", 129), body: okManifest, header: ctOCI, status: 400, code: "MANIFEST_INVALID", written: r + "/manifests/" + strings.Repeat("t", 128)},
		{name: "129-char tag by ?tag=", method: "PUT", target: r + "/manifests/" + sha256Digest(okManifest) + "?tag=" + strings.Repeat("t", 129), body: okManifest, header: ctOCI, status: 400, code: "MANIFEST_INVALID", written: r + "/manifests/" + sha256Digest(okManifest)},
		// Big manifests referencing what is not there.
		{name: "10000-entry index of unknown children", method: "PUT", target: r + "/manifests/bigindex", body: bigIndex(10000, reg.RunID), header: ctIndex, status: 400, code: "MANIFEST_BLOB_UNKNOWN", written: r + "/manifests/bigindex"},
		{name: "10000-layer manifest of unknown layers", method: "PUT", target: r + "/manifests/biglayers", body: bigImage(cfgDigest, len(cfg), 10000, func(i int) string { return sha256Digest([]byte(fmt.Sprintf("unknown layer %d %s", i, reg.RunID))) }), header: ctOCI, status: 400, code: "MANIFEST_BLOB_UNKNOWN", written: r + "/manifests/biglayers"},
		{name: "manifest over 4 MiB", method: "PUT", target: r + "/manifests/huge", body: bigImage(cfgDigest, len(cfg), 40000, func(int) string { return layerDigest }), header: ctOCI, status: 413, code: "MANIFEST_INVALID", written: r + "/manifests/huge"},
		{name: "manifest with unknown config", method: "PUT", target: r + "/manifests/unknowncfg", body: imageManifest(unknown, 5, nil), header: ctOCI, status: 400, code: "MANIFEST_BLOB_UNKNOWN", written: r + "/manifests/unknowncfg"},
		{name: "manifest with traversal digest", method: "PUT", target: r + "/manifests/travdigest", body: imageManifest("sha256:../../../"+escapeMarker, 5, nil), header: ctOCI, status: 400, code: "MANIFEST_INVALID", written: r + "/manifests/travdigest"},
		{name: "manifest Content-Type mismatch", method: "PUT", target: r + "/manifests/mismatch", body: okManifest, header: ctIndex, status: 400, code: "MANIFEST_INVALID", written: r + "/manifests/mismatch"},
		{name: "manifest not JSON", method: "PUT", target: r + "/manifests/notjson", body: []byte("\x00\xff{{{"), header: ctOCI, status: 400, code: "MANIFEST_INVALID", written: r + "/manifests/notjson"},
		// Digest mismatches.
		{name: "manifest PUT with mismatched digest", method: "PUT", target: r + "/manifests/" + unknown, body: okManifest, header: ctOCI, status: 400, code: "DIGEST_INVALID", written: r + "/manifests/" + unknown},
		{name: "monolithic blob with mismatched digest", method: "POST", target: r + "/blobs/uploads/?digest=" + unknown, body: []byte("not what the digest says"), status: 400, code: "DIGEST_INVALID", written: r + "/blobs/" + unknown},
		{name: "blob with unsupported digest algorithm", method: "POST", target: r + "/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e", body: []byte("x"), status: 400, code: "DIGEST_INVALID"},
		// Header flood within net/http's limit: served.
		{name: "1000 headers", method: "GET", target: "/v2/", header: manyHeaders(1000, 20), status: 200},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawRequest(t, reg, tc.method, tc.target, tc.header, tc.body)
			if resp.StatusCode != tc.status {
				t.Errorf("%s %s: status %d, want %d; body %s", tc.method, short(tc.target), resp.StatusCode, tc.status, short(string(body)))
			}
			if tc.code != "" && tc.method != "HEAD" {
				if got := firstErrorCode(body); got != tc.code {
					t.Errorf("%s %s: error code %q, want %q; body %s", tc.method, short(tc.target), got, tc.code, short(string(body)))
				}
			}
			if resp.StatusCode == 202 {
				// An upload session was started after all: cancel it.
				if loc := resp.Header.Get("Location"); loc != "" {
					doHTTP(t, "DELETE", absURL(reg, loc), nil, nil)
				}
			}
			if tc.written != "" {
				resp, _ := rawRequest(t, reg, "HEAD", tc.written, map[string]string{"Accept": acceptManifests}, nil)
				if resp.StatusCode != 404 {
					t.Errorf("after %s: HEAD %s answers %d, want 404", tc.name, short(tc.written), resp.StatusCode)
				}
			}
			checkAlive(t, reg)
		})
	}

	t.Run("255-char name accepted", func(t *testing.T) {
		name := nameOfLength(repo, 255)
		resp, body := rawRequest(t, reg, "POST", "/v2/"+name+"/blobs/uploads/?digest="+layerDigest, nil, layer)
		if resp.StatusCode != 201 {
			t.Fatalf("push to a 255-character name: %d %s", resp.StatusCode, short(string(body)))
		}
	})
	t.Run("128-char tag accepted", func(t *testing.T) {
		tag := strings.Repeat("t", 128)
		resp, body := rawRequest(t, reg, "PUT", r+"/manifests/"+tag, ctOCI, okManifest)
		if resp.StatusCode != 201 {
			t.Fatalf("PUT with a 128-character tag: %d %s", resp.StatusCode, short(string(body)))
		}
		tagsBefore = append(tagsBefore, tag)
	})
	t.Run("10000-layer manifest of known layers", func(t *testing.T) {
		m := bigImage(cfgDigest, len(cfg), 10000, func(int) string { return layerDigest })
		resp, body := rawRequest(t, reg, "PUT", r+"/manifests/"+sha256Digest(m), ctOCI, m)
		if resp.StatusCode != 201 {
			t.Fatalf("PUT of a 10000-layer manifest: %d %s", resp.StatusCode, short(string(body)))
		}
	})

	t.Run("PATCH body exceeds Content-Range", func(t *testing.T) {
		data := bytes.Repeat([]byte("0123456789"), 3)
		for _, chunked := range []bool{false, true} {
			loc := startUpload(t, reg, repo)
			hdr := map[string]string{"Content-Range": "0-9", "Content-Type": "application/octet-stream"}
			var resp *http.Response
			var body []byte
			if chunked {
				resp, body = rawChunked(t, reg, "PATCH", loc, hdr, data)
			} else {
				resp, body = rawRequest(t, reg, "PATCH", loc, hdr, data)
			}
			if resp.StatusCode != 400 {
				t.Errorf("chunked=%v: PATCH of %d bytes with Content-Range 0-9: %d %s", chunked, len(data), resp.StatusCode, short(string(body)))
			}
			if c := firstErrorCode(body); c != "SIZE_INVALID" && c != "BLOB_UPLOAD_INVALID" {
				t.Errorf("chunked=%v: error code %q", chunked, c)
			}
			// The session holds nothing of the refused chunk.
			st, _ := rawRequest(t, reg, "GET", loc, nil, nil)
			if st.StatusCode == 204 && st.Header.Get("Range") != "0-0" {
				t.Errorf("chunked=%v: after the refused chunk the session has Range %q", chunked, st.Header.Get("Range"))
			}
			doHTTP(t, "DELETE", absURL(reg, loc), nil, nil)
			for _, d := range []string{sha256Digest(data), sha256Digest(data[:10])} {
				expectNoBlob(t, reg, repo, d)
			}
		}
	})

	t.Run("PATCH with overflowing Content-Range", func(t *testing.T) {
		loc := startUpload(t, reg, repo)
		defer doHTTP(t, "DELETE", absURL(reg, loc), nil, nil)
		resp, body := rawChunked(t, reg, "PATCH", loc, map[string]string{"Content-Range": "0-9223372036854775807"}, nil)
		if resp.StatusCode != 416 {
			t.Errorf("PATCH with Content-Range 0-MaxInt64: %d %s", resp.StatusCode, short(string(body)))
		}
	})

	t.Run("PUT finishing an upload with a mismatched digest", func(t *testing.T) {
		loc := startUpload(t, reg, repo)
		data := []byte("the real content " + reg.RunID)
		claimed := sha256Digest([]byte("other content " + reg.RunID))
		resp, body := rawRequest(t, reg, "PUT", loc+sep(loc)+"digest="+claimed, map[string]string{"Content-Type": "application/octet-stream"}, data)
		if resp.StatusCode != 400 || firstErrorCode(body) != "DIGEST_INVALID" {
			t.Errorf("PUT with a mismatched digest: %d %s", resp.StatusCode, short(string(body)))
		}
		doHTTP(t, "DELETE", absURL(reg, loc), nil, nil)
		expectNoBlob(t, reg, repo, claimed)
		expectNoBlob(t, reg, repo, sha256Digest(data))
	})

	t.Run("huge header", func(t *testing.T) {
		status := rawFlood(t, reg, "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Huge: "+strings.Repeat("a", 2<<20)+"\r\n\r\n")
		if status != 431 {
			t.Errorf("2 MiB header: status %d, want 431", status)
		}
		checkAlive(t, reg)
	})
	t.Run("header flood", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("GET /v2/ HTTP/1.1\r\nHost: x\r\n")
		for i := 0; i < 100000; i++ {
			fmt.Fprintf(&b, "X-Flood-%d: %s\r\n", i, strings.Repeat("f", 20))
		}
		b.WriteString("\r\n")
		status := rawFlood(t, reg, b.String())
		if status != 431 {
			t.Errorf("100000 headers: status %d, want 431", status)
		}
		checkAlive(t, reg)
	})
	t.Run("conflicting Content-Length", func(t *testing.T) {
		status := rawFlood(t, reg, "POST "+r+"/blobs/uploads/?digest="+sha256Digest([]byte("abc"))+" HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc")
		if status != 400 {
			t.Errorf("two Content-Lengths: status %d, want 400", status)
		}
		expectNoBlob(t, reg, repo, sha256Digest([]byte("abc")))
	})

	t.Run("slow bodies do not hold the server", func(t *testing.T) {
		const stalled = 20
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		slowTag := "slow"
		slowBlob := []byte(strings.Repeat("s", 1000))
		uploadsBefore := finishedUploads(t, reg)
		for i := 0; i < stalled; i++ {
			c, err := net.DialTimeout("tcp", reg.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			var req string
			if i%2 == 0 {
				req = fmt.Sprintf("PUT %s/manifests/%s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
					r, slowTag, ctOCI["Content-Type"], len(okManifest), okManifest[:10])
			} else {
				req = fmt.Sprintf("POST %s/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s",
					r, sha256Digest(slowBlob), len(slowBlob), slowBlob[:10])
			}
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
		}
		// Meanwhile the server answers others, promptly.
		client := &http.Client{Timeout: 5 * time.Second}
		for i := 0; i < 10; i++ {
			start := time.Now()
			resp, err := client.Get(reg.URL + "/v2/")
			if err != nil {
				t.Fatalf("GET /v2/ while %d bodies stall: %v", stalled, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET /v2/ while bodies stall: %d", resp.StatusCode)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("GET /v2/ took %v while bodies stall", d)
			}
		}
		// A stalled request gets no answer it did not earn; the client
		// gives up (bounded) and hangs up.
		conns[0].SetReadDeadline(time.Now().Add(time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(conns[0]), nil); err == nil {
			if resp.StatusCode < 400 {
				t.Errorf("stalled PUT answered %d", resp.StatusCode)
			}
		}
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		// The checks below look for what the stalled requests must not
		// have left: only once the server has finished them all.
		if reg.Kiln {
			waitFor(t, time.Minute, "kiln finishing the stalled requests", func() (bool, string) {
				n := finishedUploads(t, reg) - uploadsBefore
				return n >= stalled, fmt.Sprintf("%d of %d finished", n, stalled)
			})
		} else {
			time.Sleep(500 * time.Millisecond) // another registry tells nothing to wait on
		}
		checkAlive(t, reg)
		if slices.Contains(listTags(t, reg, repo), slowTag) {
			t.Errorf("a stalled manifest PUT created tag %q", slowTag)
		}
		expectNoBlob(t, reg, repo, sha256Digest(slowBlob))
	})

	t.Run("body longer than Content-Length", func(t *testing.T) {
		declared := []byte("declared part " + reg.RunID)
		extra := []byte("GARBAGE beyond Content-Length\r\n\r\n")
		whole := append(append([]byte{}, declared...), extra...)
		c, err := net.DialTimeout("tcp", reg.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "POST %s/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", r, sha256Digest(whole), len(declared))
		c.Write(whole)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || firstErrorCode(body) != "DIGEST_INVALID" {
			t.Errorf("blob of %d bytes declared %d: %d %s", len(whole), len(declared), resp.StatusCode, short(string(body)))
		}
		// The excess is read as the next request: refused, never stored.
		if resp2, err := http.ReadResponse(br, nil); err == nil {
			if resp2.StatusCode != 400 {
				t.Errorf("the bytes beyond Content-Length were answered %d", resp2.StatusCode)
			}
			resp2.Body.Close()
		}
		expectNoBlob(t, reg, repo, sha256Digest(whole))
		expectNoBlob(t, reg, repo, sha256Digest(declared))
		checkAlive(t, reg)
	})

	t.Run("nothing written", func(t *testing.T) {
		got := listTags(t, reg, repo)
		for _, tag := range got {
			if !slices.Contains(tagsBefore, tag) {
				t.Errorf("tag %q appeared in %s", tag, repo)
			}
		}
		resp, body := rawRequest(t, reg, "GET", "/v2/_catalog?n=100000", nil, nil)
		if resp.StatusCode == 200 && (bytes.Contains(body, []byte(escapeMarker)) || bytes.Contains(bytes.ToLower(body), []byte(`"etc`))) {
			t.Errorf("the catalog lists a hostile name: %s", short(string(body)))
		}
	})

	t.Run("no file outside the store", func(t *testing.T) {
		after := outsideEntries(t, reg)
		for p := range after {
			if before[p] {
				continue
			}
			base := strings.ToLower(filepath.Base(p))
			for _, h := range hostileNames {
				if base == h || strings.Contains(base, escapeMarker) {
					t.Errorf("new entry %s outside the data directory, named after a hostile input", p)
				}
			}
		}
		// Inside the data directory too, nothing bears the marker.
		if reg.Kiln {
			data := filepath.Join(suiteTmp, "data")
			filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.Contains(d.Name(), escapeMarker) {
					t.Errorf("%s holds an entry named after a hostile input: %s", data, p)
				}
				return nil
			})
		}
	})
}
