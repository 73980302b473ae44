//go:build !linux

package storage

// renamesPersistInOrder is false where the filesystem is not known to
// persist renames in order: each step is then synced before the next.
func renamesPersistInOrder(string) bool { return false }
