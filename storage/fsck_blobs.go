package storage

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
)

// ---------------------------------------------------------------- blobs

func fsckAlgorithm(name string) bool {
	switch digest.Algorithm(name) {
	case digest.SHA256, digest.SHA512:
		return true
	}
	return false
}

// blobs lists /blobs/<alg>/<hex[0:2]>/<hex> and re-hashes every blob.
func (f *fsck) blobs(ctx context.Context, progress func(FsckProgress)) error {
	var found []digest.Digest
	algs, err := f.list(ctx, blobsRoot)
	if err != nil {
		return err
	}
	for _, alg := range algs {
		ap := path.Join(blobsRoot, alg)
		if dir, err := f.isDir(ctx, ap); err != nil {
			return err
		} else if !dir || !fsckAlgorithm(alg) {
			f.stray(ctx, ap, "not a digest algorithm directory")
			continue
		}
		prefixes, err := f.list(ctx, ap)
		if err != nil {
			return err
		}
		for _, prefix := range prefixes {
			pp := path.Join(ap, prefix)
			if dir, err := f.isDir(ctx, pp); err != nil {
				return err
			} else if !dir || len(prefix) != 2 || strings.Trim(prefix, "0123456789abcdef") != "" {
				f.stray(ctx, pp, "not a two-hex-digit prefix directory")
				continue
			}
			names, err := f.list(ctx, pp)
			if err != nil {
				return err
			}
			for _, name := range names {
				p := path.Join(pp, name)
				if isTempName(name) {
					f.leftover(FsckLeftoverTemp, p, "temporary file of an interrupted write", f.remove(ctx, p))
					continue
				}
				d := digest.NewDigestFromEncoded(digest.Algorithm(alg), name)
				if d.Validate() != nil || !strings.HasPrefix(name, prefix) {
					f.stray(ctx, p, "not named by a digest under its prefix")
					continue
				}
				if dir, err := f.isDir(ctx, p); err != nil {
					return err
				} else if dir {
					f.stray(ctx, p, "a directory where a blob belongs")
					continue
				}
				found = append(found, d)
			}
		}
	}

	type result struct {
		d    digest.Digest
		size int64
		got  digest.Digest
		err  error
	}
	work := make(chan digest.Digest)
	results := make(chan result)
	var wg sync.WaitGroup
	for range f.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				size, got, err := f.hash(ctx, d)
				results <- result{d, size, got, err}
			}
		}()
	}
	go func() {
		defer close(work)
		for _, d := range found {
			select {
			case work <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()

	tick := newFsckTicker(progress, "blobs", len(found))
	var firstErr error
	for r := range results {
		switch {
		case r.err != nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("blob %s: %w", r.d, r.err)
			}
		case r.got != r.d:
			f.corrupt[r.d] = true
			f.problem(FsckBlobCorrupt, blobPath(r.d), fmt.Sprintf("content of %d bytes hashes to %s", r.size, r.got),
				f.quarantine(ctx, blobPath(r.d), path.Join(string(r.d.Algorithm()), r.d.Encoded())))
		default:
			f.good[r.d] = true
		}
		f.report.Blobs++
		f.report.BlobBytes += r.size
		tick.update(f.report.Blobs, f.report.BlobBytes, false)
	}
	tick.update(f.report.Blobs, f.report.BlobBytes, true)
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	// Problems are reported in path order whatever the workers' order.
	sort.SliceStable(f.report.Problems, func(i, j int) bool { return f.report.Problems[i].Path < f.report.Problems[j].Path })
	return firstErr
}

func (f *fsck) hash(ctx context.Context, d digest.Digest) (int64, digest.Digest, error) {
	rc, err := f.s.OpenBlob(ctx, d, 0)
	if err != nil {
		return 0, "", err
	}
	defer rc.Close()
	h := d.Algorithm().Hash()
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	n, err := io.CopyBuffer(h, fsckCtxReader{ctx, rc}, *buf)
	if err != nil {
		return n, "", err
	}
	return n, digest.NewDigest(d.Algorithm(), h), nil
}

type fsckCtxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r fsckCtxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// blobState says why a blob cannot be used, "" when it can. A blob the
// walk of /blobs did not find is asked for once through HasBlob, which
// knows where else the store may keep it (the garbage collector's trash),
// and re-hashed if it turns up.
func (f *fsck) blobState(ctx context.Context, d digest.Digest) (string, error) {
	switch {
	case f.good[d]:
		return "", nil
	case f.corrupt[d]:
		return "blob " + string(d) + " is corrupt", nil
	case f.missing[d] || d.Validate() != nil:
		return "blob " + string(d) + " is missing", nil
	}
	ok, err := f.s.HasBlob(ctx, d)
	if err != nil {
		return "", err
	}
	if !ok {
		f.missing[d] = true
		return f.blobState(ctx, d)
	}
	size, got, err := f.hash(ctx, d)
	if err != nil {
		return "", err
	}
	f.report.Blobs++
	f.report.BlobBytes += size
	if got != d {
		f.corrupt[d] = true
		f.problem(FsckBlobCorrupt, blobPath(d), fmt.Sprintf("content of %d bytes hashes to %s", size, got),
			f.quarantine(ctx, blobPath(d), path.Join(string(d.Algorithm()), d.Encoded())))
	} else {
		f.good[d] = true
	}
	return f.blobState(ctx, d)
}
