package buildhook

import (
	"archive/tar"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

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
