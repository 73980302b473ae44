package native

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"kiln/internal/imagetest"
)

// sparseLayer is the attacker's layer: a gzip of a few hundred bytes
// holding file as a sparse file (PAX format 1.0, what tar --sparse
// --format=pax writes) of size bytes: one hole followed by tail. Go's tar
// writer does not write sparse files, so the headers are made by hand.
func sparseLayer(t testing.TB, file string, size int64, tail string) (v1.Layer, int) {
	t.Helper()
	var raw bytes.Buffer
	block := func(b []byte) {
		raw.Write(b)
		raw.Write(make([]byte, (512-len(b)%512)%512))
	}
	header := func(name string, typ byte, n int) {
		h := make([]byte, 512)
		copy(h[0:100], name)
		copy(h[100:108], "0000644\x00")
		copy(h[108:116], "0000000\x00")
		copy(h[116:124], "0000000\x00")
		copy(h[124:136], fmt.Sprintf("%011o\x00", n))
		copy(h[136:148], "00000000000\x00")
		h[156] = typ
		copy(h[257:265], "ustar\x0000")
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		raw.Write(h)
	}
	var pax bytes.Buffer
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"},
		{"GNU.sparse.name", file}, {"GNU.sparse.realsize", fmt.Sprint(size)}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + 1
		for len(fmt.Sprint(n))+len(rec) != n {
			n++
		}
		fmt.Fprintf(&pax, "%d%s", n, rec)
	}
	header("PaxHeaders/sparse", 'x', pax.Len())
	block(pax.Bytes())
	sparseMap := make([]byte, 512)
	copy(sparseMap, fmt.Sprintf("1\n%d\n%d\n", size-int64(len(tail)), len(tail)))
	header("GNUSparseFile.0/sparse", '0', len(sparseMap)+len(tail))
	raw.Write(sparseMap)
	block([]byte(tail))
	raw.Write(make([]byte, 1024))

	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(raw.Bytes())
	zw.Close()
	return imagetest.RawLayer(t, gz.Bytes()), gz.Len()
}

// hostileBase is the base of the finding: a sparse /etc/passwd of size
// bytes whose last line is the user app, config User=app and onbuild as
// the ONBUILD triggers.
func hostileBase(t testing.TB, size int64, onbuild ...string) (v1.Image, int) {
	t.Helper()
	l, n := sparseLayer(t, "etc/passwd", size, "\napp:x:1000:1000::/home/app:/bin/sh\n")
	img, err := mutate.AppendLayers(imagetest.Empty(), l)
	if err != nil {
		t.Fatal(err)
	}
	return imagetest.Configure(t, img, func(cf *v1.ConfigFile) {
		cf.OS, cf.Architecture = "linux", "amd64"
		cf.Config.User = "app"
		cf.Config.OnBuild = onbuild
	}), n
}

// diskLog is a build log that, at every line the builder writes,
// measures the disk used under dir (blocks, not apparent sizes): a build
// that spools writes its log lines while its spool exists.
type diskLog struct {
	dir  string
	mu   sync.Mutex
	buf  bytes.Buffer
	peak int64
}

func (l *diskLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if used := diskUsed(l.dir); used > l.peak {
		l.peak = used
	}
	return l.buf.Write(p)
}

func (l *diskLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func diskUsed(dir string) int64 {
	var used int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				used += st.Blocks * 512
			}
		}
		return nil
	})
	return used
}

// spools lists the kiln-native-* entries of dir.
func spools(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "kiln-native-*"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range m {
		m[i] = strings.TrimPrefix(m[i], dir+string(os.PathSeparator))
	}
	return m
}
