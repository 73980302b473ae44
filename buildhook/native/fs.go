package native

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
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
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	maxSymlinks    = 255
)

// fsNode is one path of an image filesystem.
type fsNode struct {
	typ  byte // tar.TypeReg, TypeDir, TypeSymlink, TypeLink, ...
	mode int64
	uid  int
	gid  int
	size int64
	link string // symlink target, or hard link target (normalized path)

	layer int          // base entries: index of the layer holding the content
	src   *fileContent // entries added by this build: where the content is
}

func (n *fsNode) isDir() bool { return n != nil && n.typ == tar.TypeDir }

// layerRecord is one tar header of one layer, as scanned.
type layerRecord struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	size     int64
	link     string
}

// layerCache keeps the scanned headers of layers by digest, so that a
// base shared by many rules, or the unchanged lower layers of a base that
// moved, are read once.
type layerCache struct {
	mu      sync.Mutex
	entries map[v1.Hash]*layerEntry
	order   []v1.Hash
	records int
}

type layerEntry struct {
	once sync.Once
	recs []layerRecord
	err  error
}

// What the native builder reads of one layer's headers, so that a layer of
// empty entries (a few bytes each, gzipped) cannot fill memory: several
// times what large distribution images hold.
const (
	maxLayerEntries   = 1 << 19
	maxLayerNameBytes = 64 << 20
)

// cacheRecords bounds the cache (about 150 bytes a record): a Debian
// based python image has some 40,000 entries.
const cacheRecords = 1 << 18

func (c *layerCache) scan(l v1.Layer) ([]layerRecord, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[v1.Hash]*layerEntry{}
	}
	e, ok := c.entries[d]
	if !ok {
		e = &layerEntry{}
		c.entries[d] = e
		c.order = append(c.order, d)
	}
	c.mu.Unlock()

	e.once.Do(func() {
		e.recs, e.err = scanLayer(l)
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.err != nil {
			delete(c.entries, d)
			c.order = slices.DeleteFunc(c.order, func(h v1.Hash) bool { return h == d })
			return
		}
		c.records += len(e.recs)
		for c.records > cacheRecords && len(c.order) > 1 {
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

func scanLayer(l v1.Layer) ([]layerRecord, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var recs []layerRecord
	var bytes int64
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading layer: %w", err)
		}
		name, ok := cleanName(h.Name)
		if !ok {
			continue
		}
		r := layerRecord{name: name, typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, size: h.Size, link: h.Linkname}
		if isRegular(r.typ) {
			r.typ = tar.TypeReg
		}
		if r.typ == tar.TypeLink {
			r.link, _ = cleanName(h.Linkname)
		}
		bytes += int64(len(r.name) + len(r.link))
		if len(recs) >= maxLayerEntries || bytes > maxLayerNameBytes {
			return nil, fmt.Errorf("reading layer: more than %d entries or %d bytes of names; the native builder does not read such layers", maxLayerEntries, maxLayerNameBytes)
		}
		recs = append(recs, r)
	}
	// Drain so the digest of the layer is verified.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, err
	}
	return recs, nil
}

// isRegular reports whether a tar entry of type typ is a regular file.
// Go's tar reader expands sparse files (typ S, and PAX sparse ones, which
// come as regular files), so their size is the apparent one.
func isRegular(typ byte) bool {
	return typ == tar.TypeReg || typ == tar.TypeRegA || typ == tar.TypeGNUSparse
}

// cleanName normalizes a tar entry name to a slash path without a
// leading slash; "" is the root. ok is false for names outside the root.
func cleanName(name string) (string, bool) {
	name = path.Clean("/" + strings.ReplaceAll(name, "\\", "/"))
	if name == "/" {
		return "", true
	}
	return name[1:], true
}

// fsBase is the merged view of an image's layers.
type fsBase struct {
	img    v1.Image
	layers []v1.Layer
	nodes  map[string]*fsNode

	childOnce sync.Once
	children  map[string][]string
}

// newFSBase scans img's layers (concurrently, through cache) and merges
// them top-down like mutate.Extract: whiteouts hide lower entries, opaque
// directories hide lower children.
func newFSBase(ctx context.Context, cache *layerCache, img v1.Image) (*fsBase, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	recs := make([][]layerRecord, len(layers))
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

	b := &fsBase{img: img, layers: layers, nodes: map[string]*fsNode{}}
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
			if base == opaqueWhiteout {
				layerOpaque[dir] = true
				continue
			}
			name := r.name
			tomb := strings.HasPrefix(base, whiteoutPrefix)
			if tomb {
				name = path.Join(dir, base[len(whiteoutPrefix):])
			}
			if _, ok := seen[name]; ok && !tomb {
				continue
			}
			if under(seen, name, true) || under(opaque, name, true) {
				continue
			}
			seen[name] = tomb || r.typ != tar.TypeDir
			if !tomb {
				b.nodes[name] = &fsNode{typ: r.typ, mode: r.mode, uid: r.uid, gid: r.gid, size: r.size, link: r.link, layer: i}
			}
		}
		for d := range layerOpaque {
			opaque[d] = true
		}
	}
	return b, nil
}

func (b *fsBase) list(dir string) []string {
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
