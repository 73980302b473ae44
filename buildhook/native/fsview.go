package native

import (
	"archive/tar"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// fsView is the filesystem of a stage as it is being built: a base plus
// what this build's layers added.
type fsView struct {
	base *fsBase // nil for scratch
	over map[string]*fsNode
}

func (v *fsView) clone() *fsView {
	return &fsView{base: v.base, over: maps.Clone(v.over)}
}

func (v *fsView) lookup(p string) *fsNode {
	if p == "" {
		return &fsNode{typ: tar.TypeDir, mode: 0o755}
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
func (v *fsView) list(dir string) []string {
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

// resolvePath resolves p (a slash path, absolute or not, taken from the
// root) through symlinks inside a filesystem, like a chroot would: every
// component, and the last one too when followLast. Components that do not
// exist are kept literally. It returns the resolved path without a leading
// slash.
func resolvePath(p string, followLast bool, lstat func(string) (typ byte, link string, ok bool, err error)) (string, error) {
	rest := splitPath(p)
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
			if hops > maxSymlinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			if strings.HasPrefix(link, "/") {
				cur = nil
			}
			rest = append(splitPath(link), rest...)
			continue
		}
		if typ != tar.TypeDir && typ != tar.TypeSymlink && len(rest) > 0 {
			return "", fmt.Errorf("/%s: not a directory", next)
		}
		cur = append(cur, c)
	}
	return strings.Join(cur, "/"), nil
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

func (v *fsView) resolve(p string, followLast bool) (string, error) {
	return resolvePath(p, followLast, func(s string) (byte, string, bool, error) {
		n := v.lookup(s)
		if n == nil {
			return 0, "", false, nil
		}
		return n.typ, n.link, true, nil
	})
}
