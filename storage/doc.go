// Package storage is kiln's content-addressed store: blobs kept once by
// digest, per-repository links, manifests, tags, referrers and resumable
// upload sessions, all on a distribution storage driver.
//
// On-disk layout: layout.go is its one owner. It documents every path the
// store writes as a tree (blobs, repositories with their links, tags,
// referrers and mirror markers, uploads, build records, adoptions, trash,
// quarantine), builds them, and parses them back for GC, fsck and the
// catalog. Other packages reach those files through Store methods only.
//
// The files live in a backend (backend.go), the only code that knows which
// kind of store it serves: the filesystem store's own (backend_fs.go,
// backend_fs_write.go), or any distribution storage driver
// (backend_driver.go). The fault-injection tests run against both.
//
// Every small file is written under a temporary name then atomically
// renamed, so a crash leaves either the old or the new content, never half
// of one. On the filesystem store kiln writes tags, manifest links,
// manifests and referrers itself (".<name>.<uuid>.tmp", fsync, rename,
// fsync of the directory: a leading dot no tag or repository name may
// have), skipping the driver's per-call wrapper (see backend_fs_write.go
// and tempname.go); the driver writes only digest-named files, under its
// own "<name>.<uuid>.tmp".
//
// Manifest content is cached in memory by digest (Options.ManifestCacheBytes,
// 16 MiB by default): content under a digest never changes, so the cache is
// correct for several instances sharing one store. Tags and links are not
// cached: every read goes to the store, so a tag moved or a manifest deleted
// by another instance is seen by the next request (staleness bound: none).
package storage
