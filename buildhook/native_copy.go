package buildhook

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// ncStat describes one source path of a COPY.
type ncStat struct {
	typ  byte // tar.TypeReg, TypeDir or TypeSymlink
	mode int64
	uid  int
	gid  int
	size int64
	link string
}

// ncSource is where a COPY reads from: the build context, or the
// filesystem of a stage or image (COPY --from).
type ncSource interface {
	// resolve follows symlinks in p within the source's root.
	resolve(p string, followLast bool) (string, error)
	// lstat describes p; ok is false when p does not exist (or is ignored).
	lstat(p string) (st ncStat, ok bool, err error)
	// list returns the sorted names of the directory p.
	list(p string) ([]string, error)
	// what names the source in messages: "build context", "stage builder".
	what() string
}

// ---- build context ----

// ncContext is the build context directory, filtered by .dockerignore.
type ncContext struct {
	root    string
	ignore  *patternmatcher.PatternMatcher
	exclude bool // ignore has exclusion (!) patterns
}

// newNCContext opens the context of a rule: the Dockerfile-specific
// <Dockerfile>.dockerignore if there is one, else <context>/.dockerignore.
func newNCContext(root, dockerfile string) (*ncContext, error) {
	c := &ncContext{root: root}
	var patterns []string
	for _, f := range []string{dockerfile + ".dockerignore", filepath.Join(root, ".dockerignore")} {
		fh, err := os.Open(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		patterns, err = ignorefile.ReadAll(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		break
	}
	if len(patterns) > 0 {
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: %w", err)
		}
		c.ignore = pm
		c.exclude = pm.Exclusions()
	}
	return c, nil
}

func (c *ncContext) what() string { return "build context" }

func (c *ncContext) host(p string) string {
	return filepath.Join(c.root, filepath.FromSlash(p))
}

// ignored reports whether p (relative, slash separated) is left out of
// the context. A directory that is ignored but may hold re-included
// (!pattern) files is not ignored itself, like docker's context walk.
func (c *ncContext) ignored(p string, isDir bool) (bool, error) {
	if c.ignore == nil || p == "" {
		return false, nil
	}
	skip, err := c.ignore.MatchesOrParentMatches(p)
	if err != nil || !skip {
		return false, err
	}
	if !isDir || !c.exclude {
		return true, nil
	}
	dirSlash := p + "/"
	for _, pat := range c.ignore.Patterns() {
		if pat.Exclusion() && strings.HasPrefix(pat.String()+"/", dirSlash) {
			return false, nil
		}
	}
	return true, nil
}

func (c *ncContext) rawLstat(p string) (fs.FileInfo, bool, error) {
	fi, err := os.Lstat(c.host(p))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || isNotDir(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	ign, err := c.ignored(p, fi.IsDir())
	if err != nil || ign {
		return nil, false, err
	}
	return fi, true, nil
}

func isNotDir(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "not a directory")
}

func (c *ncContext) resolve(p string, followLast bool) (string, error) {
	return nfsResolve(p, followLast, func(s string) (byte, string, bool, error) {
		fi, ok, err := c.rawLstat(s)
		if err != nil || !ok {
			return 0, "", false, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, err := os.Readlink(c.host(s))
			if err != nil {
				return 0, "", false, err
			}
			return tar.TypeSymlink, filepath.ToSlash(link), true, nil
		}
		if fi.IsDir() {
			return tar.TypeDir, "", true, nil
		}
		return tar.TypeReg, "", true, nil
	})
}

func (c *ncContext) lstat(p string) (ncStat, bool, error) {
	fi, ok, err := c.rawLstat(p)
	if err != nil || !ok {
		return ncStat{}, false, err
	}
	st := ncStat{mode: ncUnixMode(fi.Mode())}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		st.typ = tar.TypeSymlink
		link, err := os.Readlink(c.host(p))
		if err != nil {
			return ncStat{}, false, err
		}
		st.link = filepath.ToSlash(link)
	case fi.IsDir():
		st.typ = tar.TypeDir
	case fi.Mode().IsRegular():
		st.typ = tar.TypeReg
		st.size = fi.Size()
	default:
		return ncStat{}, false, nil // sockets, devices, pipes: not copied
	}
	return st, true, nil
}

func (c *ncContext) list(p string) ([]string, error) {
	ents, err := os.ReadDir(c.host(p))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		child := path.Join(p, e.Name())
		ign, err := c.ignored(child, e.IsDir())
		if err != nil {
			return nil, err
		}
		if !ign {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// ncUnixMode turns a Go file mode into the permission, setuid, setgid
// and sticky bits of a tar header.
func ncUnixMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// ---- image filesystem (COPY --from) ----

type ncImageSource struct {
	view *nfsView
	name string
}

func (s *ncImageSource) what() string { return s.name }

func (s *ncImageSource) resolve(p string, followLast bool) (string, error) {
	return s.view.resolve(p, followLast)
}

func (s *ncImageSource) lstat(p string) (ncStat, bool, error) {
	n := s.view.lookup(p)
	if n == nil {
		return ncStat{}, false, nil
	}
	st := ncStat{typ: n.typ, mode: n.mode, uid: n.uid, gid: n.gid, size: n.size, link: n.link}
	switch n.typ {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink:
	case tar.TypeLink:
		// A hard link is copied as the file it links to.
		t := s.view.lookup(n.link)
		if t == nil {
			return ncStat{}, false, nil
		}
		st.typ, st.size, st.link = tar.TypeReg, t.size, ""
	default:
		return ncStat{}, false, nil
	}
	return st, true, nil
}

func (s *ncImageSource) list(p string) ([]string, error) { return s.view.list(p), nil }

// ---- planning ----

// ncEntry is one entry of a layer being planned.
type ncEntry struct {
	name string // no leading slash
	typ  byte
	mode int64
	uid  int
	gid  int
	size int64
	link string

	content *nfsContent
	pending string // COPY --from: path in the source view, fetched later
}

// ncPlan collects the entries of one layer.
type ncPlan struct {
	entries map[string]*ncEntry
	target  *nfsView
}

func (p *ncPlan) add(e *ncEntry) {
	if p.entries == nil {
		p.entries = map[string]*ncEntry{}
	}
	p.entries[e.name] = e
}

// exists says whether name is a directory in the target or the plan.
func (p *ncPlan) dirExists(name string) (exists bool, err error) {
	if e, ok := p.entries[name]; ok {
		if e.typ != tar.TypeDir {
			return false, fmt.Errorf("/%s: not a directory", name)
		}
		return true, nil
	}
	n := p.target.lookup(name)
	if n == nil {
		return false, nil
	}
	if n.typ != tar.TypeDir {
		return false, fmt.Errorf("/%s: not a directory", name)
	}
	return true, nil
}

// mkdirAll adds the directories of dir (resolved, no leading slash) that
// do not exist yet. The last one gets lastMode, its parents 0755.
func (p *ncPlan) mkdirAll(dir string, lastMode int64, uid, gid int) error {
	comps := nfsSplit(dir)
	for i := range comps {
		name := strings.Join(comps[:i+1], "/")
		ok, err := p.dirExists(name)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		mode := int64(0o755)
		if i == len(comps)-1 {
			mode = lastMode
		}
		p.add(&ncEntry{name: name, typ: tar.TypeDir, mode: mode, uid: uid, gid: gid})
	}
	return nil
}

// ncCopy is one COPY or ADD, expanded.
type ncCopy struct {
	cmd       string // COPY or ADD, for messages
	sources   []string
	contents  []ncInline
	dest      string // as written (trailing slash kept), made absolute
	chown     *ncOwner
	chmod     *int64
	exclude   *patternmatcher.PatternMatcher
	isAdd     bool
	unpack    *bool
	fromImage bool // the source is a stage or image: keep its owners
}

type ncInline struct {
	name string
	data []byte
}

type ncOwner struct{ uid, gid int }

func ncHasWildcards(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[':
			return true
		case '\\':
			i++
		}
	}
	return false
}

// glob expands a source path with wildcards, component by component.
func ncGlob(src ncSource, pattern string) ([]string, error) {
	comps := nfsSplit(pattern)
	matches := []string{""}
	for i, comp := range comps {
		var next []string
		for _, m := range matches {
			if !ncHasWildcards(comp) {
				p := path.Join(m, comp)
				if i < len(comps)-1 {
					rp, err := src.resolve(p, true)
					if err != nil {
						return nil, err
					}
					if st, ok, err := src.lstat(rp); err != nil {
						return nil, err
					} else if !ok || st.typ != tar.TypeDir {
						continue
					}
				} else if _, ok, err := src.lstat(p); err != nil {
					return nil, err
				} else if !ok {
					continue
				}
				next = append(next, p)
				continue
			}
			dir, err := src.resolve(m, true)
			if err != nil {
				return nil, err
			}
			st, ok, err := src.lstat(dir)
			if err != nil {
				return nil, err
			}
			if dir != "" && (!ok || st.typ != tar.TypeDir) {
				continue
			}
			names, err := src.list(dir)
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				ok, err := path.Match(comp, n)
				if err != nil {
					return nil, fmt.Errorf("bad pattern %q: %w", pattern, err)
				}
				if ok {
					next = append(next, path.Join(m, n))
				}
			}
		}
		matches = next
	}
	return matches, nil
}

// plan works out the entries of the layer of one COPY or ADD into the
// stage filesystem target, like BuildKit's file operation: a directory
// source copies its contents, a file goes into dest when dest ends with
// a slash or is a directory, else becomes dest; missing directories are
// created 0755 (owned by --chown).
func (c *ncCopy) plan(src ncSource, target *nfsView) (*ncPlan, error) {
	p := &ncPlan{target: target}
	uid, gid := 0, 0
	if c.chown != nil {
		uid, gid = c.chown.uid, c.chown.gid
	}

	type item struct {
		orig string // as matched, for the name under a directory dest
		path string // resolved
		st   ncStat
	}
	var items []item
	for _, s := range c.sources {
		var matched []string
		if ncHasWildcards(s) {
			m, err := ncGlob(src, s)
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
				if ncHasWildcards(s) {
					continue
				}
				hint := ""
				if _, isCtx := src.(*ncContext); isCtx {
					hint = " (or excluded by .dockerignore)"
				}
				return nil, fmt.Errorf("%s %s: not found in %s%s", c.cmd, s, src.what(), hint)
			}
			if c.isAdd && st.typ == tar.TypeReg && (c.unpack == nil || *c.unpack) {
				if ctx, isCtx := src.(*ncContext); isCtx {
					arch, err := ncIsArchive(ctx.host(rp))
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
	owner := func(st ncStat) (int, int) {
		if c.chown != nil || !c.fromImage {
			return uid, gid
		}
		return st.uid, st.gid
	}
	addFile := func(name, from string, st ncStat) {
		u, g := owner(st)
		e := &ncEntry{name: name, typ: st.typ, mode: mode(st.mode), uid: u, gid: g, size: st.size, link: st.link}
		if st.typ == tar.TypeSymlink {
			e.mode = st.mode
		}
		if st.typ == tar.TypeReg {
			if ctx, isCtx := src.(*ncContext); isCtx {
				e.content = &nfsContent{hostPath: ctx.host(from), id: "ctx:" + from}
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
			if err := c.walk(src, it.path, "", func(rel, from string, st ncStat) error {
				name := path.Join(dest, rel)
				if st.typ == tar.TypeDir {
					if ok, err := p.dirExists(name); err != nil || ok {
						return err
					}
					u, g := owner(st)
					p.add(&ncEntry{name: name, typ: tar.TypeDir, mode: mode(st.mode), uid: u, gid: g})
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
		p.add(&ncEntry{name: name, typ: tar.TypeReg, mode: mode(0o644), uid: uid, gid: gid, size: int64(len(in.data)),
			content: &nfsContent{data: in.data, id: "inline:" + hex.EncodeToString(sum[:])}})
	}
	return p, nil
}

// walk visits the tree under root (not root itself) in lexical order,
// skipping paths matched by --exclude.
func (c *ncCopy) walk(src ncSource, root, rel string, fn func(rel, from string, st ncStat) error) error {
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

// ncIsArchive reports whether ADD would unpack the file: a tar, possibly
// compressed.
func ncIsArchive(file string) (bool, error) {
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

// ---- layers ----

// ncLayerWriter writes the planned entries as a deterministic tar
// (sorted, fixed times, no user names) into a file of the build's temp
// directory and hands it to go-containerregistry as a layer.
type ncLayerWriter struct {
	dir   string
	mtime time.Time
	seq   int
}

// key identifies a plan's content, to reuse one layer object across
// platforms.
func ncPlanKey(entries []*ncEntry, mt types.MediaType) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", mt)
	for _, e := range entries {
		id := ""
		if e.content != nil {
			id = e.content.id
		}
		fmt.Fprintf(h, "%q %c %o %d %d %d %q %q\n", e.name, e.typ, e.mode, e.uid, e.gid, e.size, e.link, id)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func ncSorted(p *ncPlan) []*ncEntry {
	entries := make([]*ncEntry, 0, len(p.entries))
	for _, e := range p.entries {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *ncEntry) int { return strings.Compare(a.name, b.name) })
	return entries
}

func (w *ncLayerWriter) layer(ctx context.Context, entries []*ncEntry, mt types.MediaType) (v1.Layer, error) {
	w.seq++
	file := filepath.Join(w.dir, "layer-"+strconv.Itoa(w.seq)+".tar")
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(f)
	err = func() error {
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			h := &tar.Header{
				Name:     e.name,
				Typeflag: e.typ,
				Mode:     e.mode,
				Uid:      e.uid,
				Gid:      e.gid,
				ModTime:  w.mtime,
				Linkname: e.link,
			}
			if e.typ == tar.TypeDir {
				h.Name += "/"
			}
			if e.typ == tar.TypeReg {
				h.Size = e.size
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if e.typ != tar.TypeReg {
				continue
			}
			rc, err := e.content.open()
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("/%s: %w", e.name, err)
			}
			if n != e.size {
				return fmt.Errorf("/%s changed size while it was copied", e.name)
			}
		}
		return tw.Close()
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return os.Open(file) },
		tarball.WithMediaType(mt), tarball.WithCompressedCaching)
}

// ---- owners ----

// ncParseOwner reads --chown=user[:group] (or a USER) against the stage's
// /etc/passwd and /etc/group when names are used. A numeric user without
// group gets the same number as group, like BuildKit.
func ncParseOwner(ctx context.Context, spec string, view *nfsView, spool *nfsSpool) (*ncOwner, error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	o := &ncOwner{}
	var passwd, groups []byte
	load := func(file string, into *[]byte) error {
		if *into != nil {
			return nil
		}
		b, err := view.readFile(ctx, spool, file)
		if errors.Is(err, fs.ErrNotExist) {
			*into = []byte{}
			return nil
		}
		*into = b
		return err
	}
	lookup := func(data []byte, name string) (id, gid int, ok bool) {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 3 && f[0] == name {
				id, err := strconv.Atoi(f[2])
				if err != nil {
					return 0, 0, false
				}
				g := -1
				if len(f) >= 4 {
					if v, err := strconv.Atoi(f[3]); err == nil {
						g = v
					}
				}
				return id, g, true
			}
		}
		return 0, 0, false
	}
	if n, err := strconv.Atoi(user); err == nil {
		o.uid, o.gid = n, n
	} else {
		if err := load("/etc/passwd", &passwd); err != nil {
			return nil, err
		}
		id, g, ok := lookup(passwd, user)
		if !ok {
			return nil, fmt.Errorf("user %q not found in /etc/passwd", user)
		}
		o.uid = id
		if g >= 0 {
			o.gid = g
		}
	}
	if hasGroup {
		if n, err := strconv.Atoi(group); err == nil {
			o.gid = n
		} else {
			if err := load("/etc/group", &groups); err != nil {
				return nil, err
			}
			id, _, ok := lookup(groups, group)
			if !ok {
				return nil, fmt.Errorf("group %q not found in /etc/group", group)
			}
			o.gid = id
		}
	}
	return o, nil
}
