package imagetest

import (
	"fmt"
	"maps"
	"math/rand"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// BaseOptions describe a python-like base image.
type BaseOptions struct {
	Arch    string            // amd64 when empty; arm64 gets variant v8
	Version string            // PYTHON_VERSION
	Extra   map[string]string // extra files in the top layer
	Env     []string          // after PATH, PYTHON_VERSION and LANG
	Labels  map[string]string // over maintainer=python team
	Cmd     []string          // python3 when nil
}

// Base builds a python-like base image: a root layer (usr/bin/python3,
// bin -> usr/bin, tmp 1777, etc/passwd and etc/group with a user app), an
// empty ENV step and a top layer that whites out a root file, with history
// and fixed times.
func Base(t testing.TB, o BaseOptions) v1.Image {
	t.Helper()
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	root := Layer(t, map[string]File{
		"bin":              {Link: "usr/bin"},
		"etc":              {Dir: true},
		"etc/passwd":       {Content: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"},
		"etc/group":        {Content: "root:x:0:\napp:x:1000:\nstaff:x:50:\n"},
		"tmp":              {Dir: true, Mode: 0o1777},
		"usr":              {Dir: true},
		"usr/bin":          {Dir: true},
		"usr/bin/python3":  {Content: "python " + o.Arch, Mode: 0o755},
		"usr/local":        {Dir: true},
		"usr/local/bin":    {Dir: true},
		"usr/lib":          {Dir: true},
		"usr/lib/os-arch":  {Content: o.Arch},
		"usr/lib/os-arch2": {Content: "removed later"},
	})
	topFiles := map[string]File{
		"usr/local/lib":             {Dir: true},
		"usr/local/lib/python.txt":  {Content: "python " + o.Version},
		"usr/lib/.wh.os-arch2":      {},
		"usr/local/bin/pip":         {Content: "pip", Mode: 0o755},
		"usr/local/bin/python-link": {Link: "/usr/bin/python3"},
	}
	for k, v := range o.Extra {
		topFiles[k] = File{Content: v}
	}
	img, err := mutate.Append(Empty(),
		mutate.Addendum{Layer: root, History: v1.History{CreatedBy: "ADD rootfs.tar /", Created: v1.Time{Time: time.Unix(1000, 0).UTC()}}},
		mutate.Addendum{History: v1.History{CreatedBy: "ENV PYTHON_VERSION=" + o.Version, EmptyLayer: true}},
		mutate.Addendum{Layer: Layer(t, topFiles), History: v1.History{CreatedBy: "RUN install python"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return Configure(t, img, func(cf *v1.ConfigFile) {
		cf.OS, cf.Architecture = "linux", o.Arch
		if o.Arch == "arm64" {
			cf.Variant = "v8"
		}
		cf.Created = v1.Time{Time: time.Unix(2000, 0).UTC()}
		cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "PYTHON_VERSION=" + o.Version, "LANG=C.UTF-8"}, o.Env...)
		cf.Config.Cmd = o.Cmd
		if cf.Config.Cmd == nil {
			cf.Config.Cmd = []string{"python3"}
		}
		cf.Config.Labels = map[string]string{"maintainer": "python team"}
		maps.Copy(cf.Config.Labels, o.Labels)
	})
}

// BenchBase is Base with three more layers of random files, ~2000 files
// and ~8 MB in all; the same seed gives the same image.
func BenchBase(t testing.TB, seed int64) v1.Image {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	img := Base(t, BaseOptions{Version: fmt.Sprintf("3.8.%d", seed)})
	var ls []v1.Layer
	for l := range 3 {
		files := map[string]File{}
		for i := range 700 {
			buf := make([]byte, 4096)
			rng.Read(buf)
			files[fmt.Sprintf("usr/lib/python3.8/l%d/d%d/f%d.py", l, i%20, i)] = File{Content: string(buf)}
		}
		ls = append(ls, Layer(t, files))
	}
	out, err := mutate.AppendLayers(img, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
