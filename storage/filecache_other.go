//go:build !unix

package storage

// smallFileCache does not cache where there is no unix stat: every read
// goes to the file.
type smallFileCache struct{}

func (c *smallFileCache) invalidate() {}

func (c *smallFileCache) read(path string) ([]byte, error) { return readSmallFile(path) }
