//go:build !unix

package storage

import "os"

func readSmallFile(path string) ([]byte, error) { return os.ReadFile(path) }
