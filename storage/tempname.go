package storage

import (
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// Temporary files. A small file is written under a temporary name beside
// its target, then renamed into place. kiln's own temporary names start
// with a dot, which no repository name component, tag or digest may: a
// name the spec allows can never be mistaken for one. The distribution
// filesystem driver's PutContent names its own "<name>.<uuid>.tmp"; kiln
// lets it write only digest-named files (blobs and layer links), whose
// names hold no dot, so there that pattern is unambiguous too.

// tempPath is the temporary file beside the local path dst.
func tempPath(dst string) string {
	return filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+"."+uuid.NewString()+".tmp")
}

// isTempName reports whether name, an entry of a directory whose other
// entries are named by digests, is a temporary file left behind when the
// process died between writing it and renaming it into place.
func isTempName(name string) bool {
	return isOwnTempName(name) || isDriverTempName(name)
}

// isOwnTempName reports whether name is one of kiln's own temporary files;
// in a directory of tags, where a tag may look like anything else, it is
// the only test.
func isOwnTempName(name string) bool { return strings.HasPrefix(name, ".") }

// isDriverTempName reports whether name is the filesystem driver's
// temporary file: "<name>.<uuid>.tmp".
func isDriverTempName(name string) bool {
	rest, ok := strings.CutSuffix(name, ".tmp")
	i := strings.LastIndexByte(rest, '.')
	return ok && i > 0 && len(rest)-i-1 == 36 && uuid.Validate(rest[i+1:]) == nil
}
