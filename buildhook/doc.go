// Package buildhook rebuilds images when their base tags move: the
// orchestration. It reads build rules (through buildhook/dockerfile),
// keeps the base→derived graph, queues and coalesces triggers, picks a
// builder (buildhook/native, buildhook/rebase, or the docker and buildah
// wrappers here), adds provenance, moves the rule's tags, and records
// every build and its log in the store. With autorebase it also adopts
// images pushed with base annotations naming one of its tags and rebases
// them when that tag moves, with no rule (autorebase.go).
//
// One build goes from a tag move to its result along one path: the
// store's listener (TagMoves) → Queue → Service.run → a build.Builder
// → Finalize, which adds provenance and tags it → Records. The builders
// in kiln's process (native, rebase: build.InProcess) push the image's
// blobs over HTTP and hand the image itself to Finalize; docker and
// buildah push to a staging tag, which Finalize reads and deletes. buildhook reaches the store only through storage.Store methods.
//
// In a cluster (cluster.postgres) SharedQueue stands in for Queue, with the
// same rules kept in the database's builds table, which also holds the
// records; logs stay in the store.
package buildhook
