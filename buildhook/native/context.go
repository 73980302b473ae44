package native

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// buildContext is the build context directory, filtered by .dockerignore.
type buildContext struct {
	root    string
	ignore  *patternmatcher.PatternMatcher
	exclude bool // ignore has exclusion (!) patterns
}

// openContext opens the context of a rule: the Dockerfile-specific
// <Dockerfile>.dockerignore if there is one, else <context>/.dockerignore.
func openContext(root, dockerfile string) (*buildContext, error) {
	c := &buildContext{root: root}
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

func (c *buildContext) what() string { return "build context" }

func (c *buildContext) host(p string) string {
	return filepath.Join(c.root, filepath.FromSlash(p))
}

// ignored reports whether p (relative, slash separated) is left out of
// the context. A directory that is ignored but may hold re-included
// (!pattern) files is not ignored itself, like docker's context walk.
func (c *buildContext) ignored(p string, isDir bool) (bool, error) {
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

func (c *buildContext) rawLstat(p string) (fs.FileInfo, bool, error) {
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

func (c *buildContext) resolve(p string, followLast bool) (string, error) {
	return resolvePath(p, followLast, func(s string) (byte, string, bool, error) {
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

func (c *buildContext) lstat(p string) (fileStat, bool, error) {
	fi, ok, err := c.rawLstat(p)
	if err != nil || !ok {
		return fileStat{}, false, err
	}
	st := fileStat{mode: unixMode(fi.Mode())}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		st.typ = tar.TypeSymlink
		link, err := os.Readlink(c.host(p))
		if err != nil {
			return fileStat{}, false, err
		}
		st.link = filepath.ToSlash(link)
	case fi.IsDir():
		st.typ = tar.TypeDir
	case fi.Mode().IsRegular():
		st.typ = tar.TypeReg
		st.size = fi.Size()
	default:
		return fileStat{}, false, nil // sockets, devices, pipes: not copied
	}
	return st, true, nil
}

func (c *buildContext) list(p string) ([]string, error) {
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

// unixMode turns a Go file mode into the permission, setuid, setgid
// and sticky bits of a tar header.
func unixMode(m fs.FileMode) int64 {
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
