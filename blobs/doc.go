// Package blobs implements the blob half of the API: upload sessions
// (monolithic, chunked, resumable, cross-repository mounts) and blob serving
// with byte ranges, on top of the content-addressed store.
package blobs
