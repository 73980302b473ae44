//go:build !unix

package testbed

// lockFile does not lock where flock is missing: parallel builds then
// duplicate work, and the last one to finish wins.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
