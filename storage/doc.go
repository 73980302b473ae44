// Package storage is kiln's content-addressed store: blobs kept once by
// digest, per-repository links, manifests, tags, referrers and resumable
// upload sessions, all on a distribution storage driver.
//
// On-disk layout (paths inside the driver's root):
//
//	/blobs/<alg>/<hex[0:2]>/<hex>                    blob bytes, written only after the digest was verified
//	/repositories/<name>/_layers/<alg>/<hex>          the repository may read this blob (holds the digest)
//	/repositories/<name>/_manifests/<alg>/<hex>       the repository holds this manifest (holds its media type)
//	/repositories/<name>/_tags/<tag>                  the tag's current manifest digest
//	/repositories/<name>/_referrers/<alg>/<subject-hex>/<alg>-<hex>
//	                                                  descriptor (JSON) of a manifest whose subject is that digest
//	/uploads/<id>/data                                bytes received so far by an upload session
//	/uploads/<id>/state                               the session's JSON state: repository, size, hash state
//
// Repository names never have a component starting with "_", so the
// underscore directories cannot collide with nested repository names.
// Every small file is written under a temporary name then atomically
// renamed, so a crash leaves either the old or the new content, never half
// of one. On the filesystem store kiln writes tags, manifest links and
// referrers itself (".<name>.<uuid>.tmp", fsync, rename, fsync of the
// directory: a leading dot no tag or repository name may have), skipping
// the driver's per-call wrapper (see local.go and tempname.go); the driver
// writes only digest-named files, under its own "<name>.<uuid>.tmp".
//
// Manifest content is cached in memory by digest (Options.ManifestCacheBytes,
// 16 MiB by default): content under a digest never changes, so the cache is
// correct for several instances sharing one store. Tags and links are not
// cached: every read goes to the store, so a tag moved or a manifest deleted
// by another instance is seen by the next request (staleness bound: none).
package storage
