package native

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"

	"github.com/moby/patternmatcher"
)

// fileStat describes one source path of a COPY.
type fileStat struct {
	typ  byte // tar.TypeReg, TypeDir or TypeSymlink
	mode int64
	uid  int
	gid  int
	size int64
	link string
}

// copySource is where a COPY reads from: the build context, or the
// filesystem of a stage or image (COPY --from).
type copySource interface {
	// resolve follows symlinks in p within the source's root.
	resolve(p string, followLast bool) (string, error)
	// lstat describes p; ok is false when p does not exist (or is ignored).
	lstat(p string) (st fileStat, ok bool, err error)
	// list returns the sorted names of the directory p.
	list(p string) ([]string, error)
	// what names the source in messages: "build context", "stage builder".
	what() string
}

// ---- image filesystem (COPY --from) ----

type imageSource struct {
	view *fsView
	name string
}

func (s *imageSource) what() string { return s.name }

func (s *imageSource) resolve(p string, followLast bool) (string, error) {
	return s.view.resolve(p, followLast)
}

func (s *imageSource) lstat(p string) (fileStat, bool, error) {
	n := s.view.lookup(p)
	if n == nil {
		return fileStat{}, false, nil
	}
	st := fileStat{typ: n.typ, mode: n.mode, uid: n.uid, gid: n.gid, size: n.size, link: n.link}
	switch n.typ {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink:
	case tar.TypeLink:
		// A hard link is copied as the file it links to.
		t := s.view.lookup(n.link)
		if t == nil {
			return fileStat{}, false, nil
		}
		st.typ, st.size, st.link = tar.TypeReg, t.size, ""
	default:
		return fileStat{}, false, nil
	}
	return st, true, nil
}

func (s *imageSource) list(p string) ([]string, error) { return s.view.list(p), nil }

// planEntry is one entry of a layer being planned.
type planEntry struct {
	name string // no leading slash
	typ  byte
	mode int64
	uid  int
	gid  int
	size int64
	link string

	content *fileContent
	pending string // COPY --from: path in the source view, fetched later
}

// copyPlan collects the entries of one layer.
type copyPlan struct {
	entries map[string]*planEntry
	target  *fsView
}

func (p *copyPlan) add(e *planEntry) {
	if p.entries == nil {
		p.entries = map[string]*planEntry{}
	}
	p.entries[e.name] = e
}

// exists says whether name is a directory in the target or the plan.
func (p *copyPlan) dirExists(name string) (exists bool, err error) {
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
func (p *copyPlan) mkdirAll(dir string, lastMode int64, uid, gid int) error {
	comps := splitPath(dir)
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
		p.add(&planEntry{name: name, typ: tar.TypeDir, mode: mode, uid: uid, gid: gid})
	}
	return nil
}

// copyOp is one COPY or ADD, expanded.
type copyOp struct {
	cmd       string // COPY or ADD, for messages
	sources   []string
	contents  []inlineFile
	dest      string // as written (trailing slash kept), made absolute
	chown     *userGroup
	chmod     *int64
	exclude   *patternmatcher.PatternMatcher
	isAdd     bool
	unpack    *bool
	fromImage bool // the source is a stage or image: keep its owners
}

type inlineFile struct {
	name string
	data []byte
}

type userGroup struct{ uid, gid int }

func hasWildcards(s string) bool {
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
func glob(src copySource, pattern string) ([]string, error) {
	comps := splitPath(pattern)
	matches := []string{""}
	for i, comp := range comps {
		var next []string
		for _, m := range matches {
			if !hasWildcards(comp) {
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
