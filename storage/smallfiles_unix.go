//go:build unix

package storage

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// Small files (tags, links, manifests) and directory syncs with bare
// system calls.

// readSmallFile reads a whole small file (a tag, a link, a manifest) with
// bare open, read and close calls. os.ReadFile also stats the file, reads
// once more to see EOF and registers the descriptor with the network
// poller (which refuses regular files, after two more calls): on a manifest
// GET by tag, which reads two such files, that was a quarter of the server's
// CPU.
func readSmallFile(path string) ([]byte, error) {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
	}
}

// writeNewFile creates path (which must not exist), writes content and
// fsyncs it, with bare system calls for the same reason.
func writeNewFile(path string, content []byte) error {
	fd, err := openRetry(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	err = writeAll(fd, content)
	if err == nil {
		err = fsyncRetry(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// writeAll writes all of content to fd.
func writeAll(fd int, content []byte) error {
	for len(content) > 0 {
		n, err := unix.Write(fd, content)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err // n is -1 then: not a length
		}
		content = content[n:]
	}
	return nil
}

// syncDir fsyncs directory dir, making the entries created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	fd, err := openRetry(dir, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	err = fsyncRetry(fd)
	unix.Close(fd)
	if err != nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

func openRetry(path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Open(path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func fsyncRetry(fd int) error {
	for {
		if err := unix.Fsync(fd); err != unix.EINTR {
			return err
		}
	}
}
