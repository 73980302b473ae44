package buildhook

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// This file gives the native builder a read-only view of an image's
// flattened filesystem without unpacking it: the tar headers of every layer
// (scanned once per layer digest and cached), merged with the OCI whiteout
// rules, plus the entries this build's own COPY layers added on top.

const (
	nfsWhiteoutPrefix = ".wh."
	nfsOpaqueWhiteout = ".wh..wh..opq"
	nfsMaxSymlinks    = 255
)

// nfsNode is one path of an image filesystem.
type nfsNode struct {
	typ  byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink, ...
	mode int64
	uid  int
	gid  int
	size int64
	link string // symlink target, or hard link target (normalized path)

	layer int         // base entries: index of the layer holding the content
	src   *nfsContent // entries added by this build: where the content is
}

func (n *nfsNode) isDir() bool { return n != nil && n.typ == tar.TypeDir }

// nfsRec is one tar header of one layer, as scanned.
type nfsRec struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	size     int64
	link     string
}

// nfsLayerCache keeps the scanned headers of layers by digest, so that a
// base shared by many rules, or the unchanged lower layers of a base that
// moved, are read once.
type nfsLayerCache struct {
	mu      sync.Mutex
	entries map[v1.Hash]*nfsLayerEntry
	order   []v1.Hash
	records int
}

type nfsLayerEntry struct {
	once sync.Once
	recs []nfsRec
	err  error
}

// nfsCacheRecords bounds the cache (about 150 bytes a record): a Debian
// based python image has some 40,000 entries.
const nfsCacheRecords = 1 << 18

func (c *nfsLayerCache) scan(l v1.Layer) ([]nfsRec, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[v1.Hash]*nfsLayerEntry{}
	}
	e, ok := c.entries[d]
	if !ok {
		e = &nfsLayerEntry{}
		c.entries[d] = e
		c.order = append(c.order, d)
	}
	c.mu.Unlock()

	e.once.Do(func() {
		e.recs, e.err = nfsScanLayer(l)
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.err != nil {
			delete(c.entries, d)
			c.order = slices.DeleteFunc(c.order, func(h v1.Hash) bool { return h == d })
			return
		}
		c.records += len(e.recs)
		for c.records > nfsCacheRecords && len(c.order) > 1 {
			old := c.order[0]
			c.order = c.order[1:]
			if oe := c.entries[old]; oe != nil {
				c.records -= len(oe.recs)
			}
			delete(c.entries, old)
		}
	})
	return e.recs, e.err
}

func nfsScanLayer(l v1.Layer) ([]nfsRec, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var recs []nfsRec
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer: %w", err)
		}
		name, ok := nfsCleanName(h.Name)
		if !ok {
			continue
		}
		r := nfsRec{name: name, typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, size: h.Size, link: h.Linkname}
		if r.typ == tar.TypeRegA {
			r.typ = tar.TypeReg
		}
		if r.typ == tar.TypeLink {
			r.link, _ = nfsCleanName(h.Linkname)
		}
		recs = append(recs, r)
	}
	// Drain so the digest of the layer is verified.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, err
	}
	return recs, nil
}

// nfsCleanName normalizes a tar entry name to a slash path without a
// leading slash; "" is the root. ok is false for names outside the root.
func nfsCleanName(name string) (string, bool) {
	name = path.Clean("/" + strings.ReplaceAll(name, "\\", "/"))
	if name == "/" {
		return "", true
	}
	return name[1:], true
}

// nfsBase is the merged view of an image's layers.
type nfsBase struct {
	img    v1.Image
	layers []v1.Layer
	nodes  map[string]*nfsNode

	childOnce sync.Once
	children  map[string][]string
}

// newNFSBase scans img's layers (concurrently, through cache) and merges
// them top-down like mutate.Extract: whiteouts hide lower entries, opaque
// directories hide lower children.
func newNFSBase(ctx context.Context, cache *nfsLayerCache, img v1.Image) (*nfsBase, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	recs := make([][]nfsRec, len(layers))
	errs := make([]error, len(layers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			recs[i], errs[i] = cache.scan(l)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("reading the base filesystem: %w", err)
	}

	b := &nfsBase{img: img, layers: layers, nodes: map[string]*nfsNode{}}
	seen := map[string]bool{}   // name → hides what is below (whiteout or non-dir)
	opaque := map[string]bool{} // directories whose lower contents are hidden
	under := func(m map[string]bool, name string, needTrue bool) bool {
		for name != "" {
			i := strings.LastIndexByte(name, '/')
			if i < 0 {
				name = ""
			} else {
				name = name[:i]
			}
			if v, ok := m[name]; ok && (v || !needTrue) {
				return true
			}
		}
		return false
	}
	for i := len(layers) - 1; i >= 0; i-- {
		layerOpaque := map[string]bool{}
		for _, r := range recs[i] {
			if r.name == "" {
				continue
			}
			dir, base := path.Split(r.name)
			dir = strings.TrimSuffix(dir, "/")
			if base == nfsOpaqueWhiteout {
				layerOpaque[dir] = true
				continue
			}
			name := r.name
			tomb := strings.HasPrefix(base, nfsWhiteoutPrefix)
			if tomb {
				name = path.Join(dir, base[len(nfsWhiteoutPrefix):])
			}
			if _, ok := seen[name]; ok && !tomb {
				continue
			}
			if under(seen, name, true) || under(opaque, name, true) {
				continue
			}
			seen[name] = tomb || r.typ != tar.TypeDir
			if !tomb {
				b.nodes[name] = &nfsNode{typ: r.typ, mode: r.mode, uid: r.uid, gid: r.gid, size: r.size, link: r.link, layer: i}
			}
		}
		for d := range layerOpaque {
			opaque[d] = true
		}
	}
	return b, nil
}

func (b *nfsBase) list(dir string) []string {
	b.childOnce.Do(func() {
		b.children = map[string][]string{}
		for name := range b.nodes {
			d := path.Dir(name)
			if d == "." {
				d = ""
			}
			b.children[d] = append(b.children[d], path.Base(name))
		}
	})
	return b.children[dir]
}

// nfsView is the filesystem of a stage as it is being built: a base plus
// what this build's layers added.
type nfsView struct {
	base *nfsBase // nil for scratch
	over map[string]*nfsNode
}

func (v *nfsView) clone() *nfsView {
	return &nfsView{base: v.base, over: maps.Clone(v.over)}
}

func (v *nfsView) lookup(p string) *nfsNode {
	if p == "" {
		return &nfsNode{typ: tar.TypeDir, mode: 0o755}
	}
	if n, ok := v.over[p]; ok {
		return n
	}
	if v.base != nil {
		return v.base.nodes[p]
	}
	return nil
}

// list returns the sorted names in dir.
func (v *nfsView) list(dir string) []string {
	set := map[string]bool{}
	if v.base != nil {
		for _, n := range v.base.list(dir) {
			set[n] = true
		}
	}
	for name := range v.over {
		d := path.Dir(name)
		if d == "." {
			d = ""
		}
		if d == dir {
			set[path.Base(name)] = true
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// nfsResolve resolves p (a slash path, absolute or not, taken from the
// root) through symlinks inside a filesystem, like a chroot would: every
// component, and the last one too when followLast. Components that do not
// exist are kept literally. It returns the resolved path without a leading
// slash.
func nfsResolve(p string, followLast bool, lstat func(string) (typ byte, link string, ok bool, err error)) (string, error) {
	rest := nfsSplit(p)
	var cur []string
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == ".." {
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		next := strings.Join(append(slices.Clone(cur), c), "/")
		typ, link, ok, err := lstat(next)
		if err != nil {
			return "", err
		}
		if !ok {
			cur = append(cur, c)
			continue
		}
		if typ == tar.TypeSymlink && (len(rest) > 0 || followLast) {
			hops++
			if hops > nfsMaxSymlinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			if strings.HasPrefix(link, "/") {
				cur = nil
			}
			rest = append(nfsSplit(link), rest...)
			continue
		}
		if typ != tar.TypeDir && typ != tar.TypeSymlink && len(rest) > 0 {
			return "", fmt.Errorf("/%s: not a directory", next)
		}
		cur = append(cur, c)
	}
	return strings.Join(cur, "/"), nil
}

func nfsSplit(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func (v *nfsView) resolve(p string, followLast bool) (string, error) {
	return nfsResolve(p, followLast, func(s string) (byte, string, bool, error) {
		n := v.lookup(s)
		if n == nil {
			return 0, "", false, nil
		}
		return n.typ, n.link, true, nil
	})
}

// nfsContent is where the bytes of a file come from.
type nfsContent struct {
	hostPath string // a file of the build context
	data     []byte // inline content (heredoc, /etc/passwd read back)
	spool    *nfsSpool
	off, n   int64
	id       string // identity for layer reuse
}

func (c *nfsContent) open() (io.ReadCloser, error) {
	switch {
	case c.spool != nil:
		return io.NopCloser(io.NewSectionReader(c.spool.f, c.off, c.n)), nil
	case c.hostPath != "":
		return os.Open(c.hostPath)
	default:
		return io.NopCloser(bytes.NewReader(c.data)), nil
	}
}

// nfsSpool holds file contents read out of image layers for the build.
type nfsSpool struct {
	mu   sync.Mutex
	f    *os.File
	size int64
}

func (s *nfsSpool) add(r io.Reader, n int64) (*nfsContent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := io.NewOffsetWriter(s.f, s.size)
	written, err := io.CopyN(w, r, n)
	if err != nil {
		return nil, err
	}
	c := &nfsContent{spool: s, off: s.size, n: written}
	s.size += written
	return c, nil
}

// fetch fills the content of the regular files at names (resolved paths
// of v, hard links followed), reading each base layer that holds one of
// them once.
func (v *nfsView) fetch(ctx context.Context, spool *nfsSpool, names []string) (map[string]*nfsContent, error) {
	out := map[string]*nfsContent{}
	byLayer := map[int]map[string][]string{} // layer → name in layer → wanted names
	for _, name := range names {
		key, n := name, v.lookup(name)
		for hops := 0; n != nil && n.typ == tar.TypeLink && n.src == nil; hops++ {
			if hops > nfsMaxSymlinks {
				return nil, fmt.Errorf("/%s: too many levels of hard links", name)
			}
			key = n.link
			n = v.lookup(key)
		}
		switch {
		case n == nil:
		case n.src != nil:
			out[name] = n.src
		case n.typ == tar.TypeReg:
			if byLayer[n.layer] == nil {
				byLayer[n.layer] = map[string][]string{}
			}
			byLayer[n.layer][key] = append(byLayer[n.layer][key], name)
		}
	}
	if len(byLayer) == 0 {
		return out, nil
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, 0, len(byLayer))
	for li, want := range byLayer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := v.base.readLayer(ctx, spool, li, want)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for k, c := range got {
				out[k] = c
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			if n := v.lookup(name); n != nil && (n.typ == tar.TypeReg || n.typ == tar.TypeLink) {
				return nil, fmt.Errorf("/%s: content not found in its layer", name)
			}
		}
	}
	return out, nil
}

func (b *nfsBase) readLayer(ctx context.Context, spool *nfsSpool, li int, want map[string][]string) (map[string]*nfsContent, error) {
	l := b.layers[li]
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out := map[string]*nfsContent{}
	tr := tar.NewReader(rc)
	left := len(want)
	for left > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", d, err)
		}
		name, _ := nfsCleanName(h.Name)
		targets, ok := want[name]
		if !ok || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA) {
			continue
		}
		c, err := spool.add(tr, h.Size)
		if err != nil {
			return nil, err
		}
		c.id = "layer:" + d.String() + ":" + name
		for _, t := range targets {
			out[t] = c
		}
		delete(want, name)
		left--
	}
	return out, nil
}

// readFile returns the content of the file at p in v (following
// symlinks), or fs.ErrNotExist.
func (v *nfsView) readFile(ctx context.Context, spool *nfsSpool, p string) ([]byte, error) {
	rp, err := v.resolve(p, true)
	if err != nil {
		return nil, err
	}
	n := v.lookup(rp)
	if n == nil || (n.typ != tar.TypeReg && n.typ != tar.TypeLink) {
		return nil, fs.ErrNotExist
	}
	got, err := v.fetch(ctx, spool, []string{rp})
	if err != nil {
		return nil, err
	}
	c := got[rp]
	if c == nil {
		return nil, fs.ErrNotExist
	}
	rc, err := c.open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
