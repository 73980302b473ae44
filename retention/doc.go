// Package retention deletes the tags and untagged manifests of pushed
// repositories that the configured policies no longer keep, never one a
// build needs or a kept tag reaches.
package retention
