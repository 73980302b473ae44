package native

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// plan works out the entries of the layer of one COPY or ADD into the
// stage filesystem target, like BuildKit's file operation: a directory
// source copies its contents, a file goes into dest when dest ends with
// a slash or is a directory, else becomes dest; missing directories are
// created 0755 (owned by --chown).
func (c *copyOp) plan(src copySource, target *fsView) (*copyPlan, error) {
	p := &copyPlan{target: target}
	uid, gid := 0, 0
	if c.chown != nil {
		uid, gid = c.chown.uid, c.chown.gid
	}

	type item struct {
		orig string // as matched, for the name under a directory dest
		path string // resolved
		st   fileStat
	}
	var items []item
	for _, s := range c.sources {
		var matched []string
		if hasWildcards(s) {
			m, err := glob(src, s)
			if err != nil {
				return nil, err
			}
			matched = m
		} else {
			matched = []string{path.Clean("/" + s)[1:]}
		}
		for _, m := range matched {
			rp, err := src.resolve(m, true)
			if err != nil {
				return nil, err
			}
			st, ok, err := src.lstat(rp)
			if err != nil {
				return nil, err
			}
			if !ok {
				if hasWildcards(s) {
					continue
				}
				hint := ""
				if _, isCtx := src.(*buildContext); isCtx {
					hint = " (or excluded by .dockerignore)"
				}
				return nil, fmt.Errorf("%s %s: not found in %s%s", c.cmd, s, src.what(), hint)
			}
			if c.isAdd && st.typ == tar.TypeReg && (c.unpack == nil || *c.unpack) {
				if ctx, isCtx := src.(*buildContext); isCtx {
					arch, err := isArchive(ctx.host(rp))
					if err != nil {
						return nil, err
					}
					if arch {
						return nil, fmt.Errorf("ADD %s: a local archive is unpacked by ADD, which the native builder does not do; use COPY to copy it as it is, or builder docker or buildah", s)
					}
				}
			}
			items = append(items, item{orig: m, path: rp, st: st})
		}
	}

	destDir := strings.HasSuffix(c.dest, "/")
	dest, err := target.resolve(c.dest, true)
	if err != nil {
		return nil, fmt.Errorf("%s destination %s: %w", c.cmd, c.dest, err)
	}
	if !destDir {
		if n := target.lookup(dest); n.isDir() {
			destDir = true
		}
	}
	if !destDir && len(items)+len(c.contents) > 1 {
		return nil, fmt.Errorf("%s with more than one source file needs a directory destination ending with /, got %s", c.cmd, c.dest)
	}

	mode := func(m int64) int64 {
		if c.chmod != nil {
			return *c.chmod
		}
		return m
	}
	owner := func(st fileStat) (int, int) {
		if c.chown != nil || !c.fromImage {
			return uid, gid
		}
		return st.uid, st.gid
	}
	addFile := func(name, from string, st fileStat) {
		u, g := owner(st)
		e := &planEntry{name: name, typ: st.typ, mode: mode(st.mode), uid: u, gid: g, size: st.size, link: st.link}
		if st.typ == tar.TypeSymlink {
			e.mode = st.mode
		}
		if st.typ == tar.TypeReg {
			if ctx, isCtx := src.(*buildContext); isCtx {
				e.content = &fileContent{hostPath: ctx.host(from), id: "ctx:" + from}
			} else {
				e.pending = from
			}
		}
		p.add(e)
	}

	for _, it := range items {
		if it.st.typ == tar.TypeDir {
			u, g := owner(it.st)
			if err := p.mkdirAll(dest, mode(it.st.mode), u, g); err != nil {
				return nil, err
			}
			if err := c.walk(src, it.path, "", func(rel, from string, st fileStat) error {
				name := path.Join(dest, rel)
				if st.typ == tar.TypeDir {
					if ok, err := p.dirExists(name); err != nil || ok {
						return err
					}
					u, g := owner(st)
					p.add(&planEntry{name: name, typ: tar.TypeDir, mode: mode(st.mode), uid: u, gid: g})
					return nil
				}
				addFile(name, from, st)
				return nil
			}); err != nil {
				return nil, err
			}
			continue
		}
		name := dest
		if destDir {
			if err := p.mkdirAll(dest, 0o755, uid, gid); err != nil {
				return nil, err
			}
			name = path.Join(dest, path.Base(it.orig))
		} else if err := p.mkdirAll(path.Dir("/" + dest)[1:], 0o755, uid, gid); err != nil {
			return nil, err
		}
		if n := target.lookup(name); n.isDir() {
			return nil, fmt.Errorf("%s: cannot overwrite directory /%s with a file", c.cmd, name)
		}
		addFile(name, it.path, it.st)
	}
	for _, in := range c.contents {
		name := dest
		if destDir {
			if err := p.mkdirAll(dest, 0o755, uid, gid); err != nil {
				return nil, err
			}
			name = path.Join(dest, path.Base("/"+in.name))
		} else if err := p.mkdirAll(path.Dir("/" + dest)[1:], 0o755, uid, gid); err != nil {
			return nil, err
		}
		sum := sha256.Sum256(in.data)
		p.add(&planEntry{name: name, typ: tar.TypeReg, mode: mode(0o644), uid: uid, gid: gid, size: int64(len(in.data)),
			content: &fileContent{data: in.data, id: "inline:" + hex.EncodeToString(sum[:])}})
	}
	return p, nil
}

// walk visits the tree under root (not root itself) in lexical order,
// skipping paths matched by --exclude.
func (c *copyOp) walk(src copySource, root, rel string, fn func(rel, from string, st fileStat) error) error {
	names, err := src.list(path.Join(root, rel))
	if err != nil {
		return err
	}
	for _, n := range names {
		r := path.Join(rel, n)
		from := path.Join(root, r)
		st, ok, err := src.lstat(from)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if c.exclude != nil {
			skip, err := c.exclude.MatchesOrParentMatches(r)
			if err != nil {
				return err
			}
			if skip {
				continue
			}
		}
		if err := fn(r, from, st); err != nil {
			return err
		}
		if st.typ == tar.TypeDir {
			if err := c.walk(src, root, r, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// isArchive reports whether ADD would unpack the file: a tar, possibly
// compressed.
func isArchive(file string) (bool, error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(6)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return false, nil
		}
		r = zr
	case bytes.HasPrefix(magic, []byte("BZh")):
		r = bzip2.NewReader(br)
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}),
		bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return true, nil // xz, zstd: assume a tar inside
	}
	_, err = tar.NewReader(r).Next()
	return err == nil, nil
}
