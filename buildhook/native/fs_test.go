package native

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"kiln/internal/imagetest"
)

// The native builder's view of a base must be mutate.Extract's.
func TestFSMatchesExtract(t *testing.T) {
	t.Parallel()
	img := imagetest.Base(t, imagetest.BaseOptions{Version: "3.8.1"})
	img, err := mutate.AppendLayers(img,
		imagetest.Layer(t, map[string]imagetest.File{
			"usr/local/lib/.wh..wh..opq":  {},
			"usr/local/lib/new.txt":       {Content: "new"},
			"etc/passwd":                  {Content: "root:x:0:0::/:/bin/sh\n"},
			"usr/lib":                     {Content: "a file now"},
			"usr/local/bin/.wh.pip":       {},
			"opt":                         {Dir: true, Mode: 0o700},
			"opt/tool":                    {Link: "../usr/bin/python3"},
			"usr/local/bin/python-link-2": {Link: "python-link"},
		}),
		imagetest.Layer(t, map[string]imagetest.File{"usr/lib": {Dir: true}, "usr/lib/again": {Content: "again"}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newFSBase(context.Background(), &layerCache{}, img)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	want := map[string]byte{}
	for _, e := range imagetest.ReadTar(t, rc) {
		if n, _ := cleanName(e.Header.Name); n != "" {
			want[n] = e.Header.Typeflag
		}
	}
	got := map[string]byte{}
	for n, node := range b.nodes {
		got[n] = node.typ
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("view\n%v\nExtract\n%v", got, want)
	}
	v := &fsView{base: b}
	for in, want := range map[string]string{
		"/opt/tool":                 "usr/bin/python3", // relative link, .. from /opt
		"/bin/../opt":               "usr/opt",         // .. after a symlink, like the kernel
		"usr/local/bin/python-link": "usr/bin/python3",
		"/nothere/x":                "nothere/x",
	} {
		if r, err := v.resolve(in, true); err != nil || r != want {
			t.Errorf("resolve(%s) = %q, %v; want %s", in, r, err, want)
		}
	}
	data, err := v.readFile(context.Background(), &spoolFile{f: tempFile(t), budget: &diskBudget{limit: 1 << 20}}, "/usr/local/bin/python-link-2", 1<<20)
	if err != nil || string(data) != "python amd64" {
		t.Errorf("readFile = %q, %v", data, err)
	}
}

func tempFile(t testing.TB) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
