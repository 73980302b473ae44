package storage

import (
	"context"
	"errors"
)

// Small files (tags, links) read through the backend. On the filesystem
// store that skips the distribution driver's wrapper, which checks every
// path with a regular expression, traces and throttles each call (on a
// manifest GET that was a third of the CPU); validPath keeps refusing
// exactly what the driver refuses.

// validPath reports whether p is a path the distribution driver accepts
// (its PathRegexp, ^(/[A-Za-z0-9._-]+)+$), so that the direct reads refuse
// exactly what the driver refuses.
func validPath(p string) bool {
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		case c == '/':
			if p[i-1] == '/' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// errInvalidPath is what a direct read answers for a path the driver
// would refuse; callers see it as an error, as they saw the driver's.
var errInvalidPath = errors.New("storage: invalid path")

// getContent reads the small file at p (a tag or a manifest link); the
// caller must not change the slice.
func (s *Store) getContent(ctx context.Context, p string) ([]byte, error) {
	return s.files.read(ctx, p)
}

// listNames returns the names of the entries of directory p (not their
// paths, in no order).
func (s *Store) listNames(ctx context.Context, p string) ([]string, error) {
	return s.files.names(ctx, p)
}
