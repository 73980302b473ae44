package native

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// fileContent is where the bytes of a file come from.
type fileContent struct {
	hostPath string // a file of the build context
	data     []byte // inline content (heredoc, /etc/passwd read back)
	spool    *spoolFile
	off, n   int64
	id       string // identity for layer reuse
}

func (c *fileContent) open() (io.ReadCloser, error) {
	switch {
	case c.spool != nil:
		return io.NopCloser(io.NewSectionReader(c.spool.f, c.off, c.n)), nil
	case c.hostPath != "":
		return os.Open(c.hostPath)
	default:
		return io.NopCloser(bytes.NewReader(c.data)), nil
	}
}

// spoolFile holds file contents read out of image layers for the build.
type spoolFile struct {
	mu     sync.Mutex
	f      *os.File
	size   int64
	budget *diskBudget
}

// add copies n bytes of r, the content of the file what, to the spool.
func (s *spoolFile) add(what string, r io.Reader, n int64) (*fileContent, error) {
	if err := s.budget.reserve(what, n); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := io.NewOffsetWriter(s.f, s.size)
	written, err := io.CopyN(w, r, n)
	if err != nil {
		return nil, err
	}
	c := &fileContent{spool: s, off: s.size, n: written}
	s.size += written
	return c, nil
}

// fetch fills the content of the regular files at names (resolved paths
// of v, hard links followed), reading each base layer that holds one of
// them once.
func (v *fsView) fetch(ctx context.Context, spool *spoolFile, names []string) (map[string]*fileContent, error) {
	out := map[string]*fileContent{}
	byLayer := map[int]map[string][]string{} // layer → name in layer → wanted names
	for _, name := range names {
		key, n := name, v.lookup(name)
		for hops := 0; n != nil && n.typ == tar.TypeLink && n.src == nil; hops++ {
			if hops > maxSymlinks {
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

func (b *fsBase) readLayer(ctx context.Context, spool *spoolFile, li int, want map[string][]string) (map[string]*fileContent, error) {
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
	out := map[string]*fileContent{}
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
		name, _ := cleanName(h.Name)
		targets, ok := want[name]
		if !ok || !isRegular(h.Typeflag) {
			continue
		}
		c, err := spool.add("/"+name, tr, h.Size)
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
// symlinks), or fs.ErrNotExist. A file larger than max is an error, found
// from its size before anything is read.
func (v *fsView) readFile(ctx context.Context, spool *spoolFile, p string, max int64) ([]byte, error) {
	rp, err := v.resolve(p, true)
	if err != nil {
		return nil, err
	}
	n := v.lookup(rp)
	for hops := 0; n != nil && n.typ == tar.TypeLink && n.src == nil && hops <= maxSymlinks; hops++ {
		n = v.lookup(n.link)
	}
	if n == nil || n.typ != tar.TypeReg {
		return nil, fs.ErrNotExist
	}
	if n.size > max {
		return nil, fmt.Errorf("%s is larger than %d bytes (%d bytes)", p, max, n.size)
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
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s is larger than %d bytes", p, max)
	}
	return b, err
}
