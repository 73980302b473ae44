// Package distspec holds what the OCI distribution spec defines for the
// API and every handler shares: its error codes and their JSON form, the
// error a client gets for a storage fault, and the grammar of repository
// names and tags.
//
// It imports no other kiln package, so that storage, blobs, proxy, auth,
// buildhook and registry can all use it without importing each other.
package distspec
