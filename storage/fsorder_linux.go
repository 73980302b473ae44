package storage

import "golang.org/x/sys/unix"

// renamesPersistInOrder reports whether the filesystem holding dir journals
// metadata in order (ext4, xfs): after a crash, the renames that persisted
// are always a prefix of the renames made, so renames made in the order the
// store needs are persisted in that order without a sync between them.
// ext2 shares ext4's magic number but has no journal; it is not worth a
// registry's data and is taken to be ext4.
func renamesPersistInOrder(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC:
		return true
	}
	return false
}
