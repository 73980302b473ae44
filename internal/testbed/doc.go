// Package testbed starts the real outside parts that kiln's tests run
// against: an S3-compatible server (versitygw), a private Docker Engine and
// the OCI distribution-spec conformance suite.
//
// The repository needs nothing beside it: tools that are missing are built
// from the Go module proxy at pinned versions (cached under the user's cache
// directory, see CacheRoot) or installed with apt-get when running as root.
// Everything listens on loopback only. Every function returns an error
// rather than failing a test, so it can be called from TestMain too, and
// whatever it starts has a Stop that must be called.
package testbed
