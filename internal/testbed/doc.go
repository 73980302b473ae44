// Package testbed starts the real outside parts that kiln's tests run
// against: an S3-compatible server (versitygw), PostgreSQL, a private
// Docker Engine and the OCI distribution-spec conformance suite.
//
// The repository needs nothing beside it: a missing tool is built from the
// Go module proxy at a pinned version (cached in kiln-testbed under
// $XDG_CACHE_HOME or $HOME/.cache) or installed with apt-get when running
// as root. Servers listen on loopback or a unix socket only. Functions
// return errors rather than failing a test, so TestMain can call them too;
// whatever they start has a Stop that the caller must call.
package testbed
