package bench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// pullSingle reads Pushes blobs one after another, hashing each, and
// reports bytes / total time.
func (r *runner) pullSingle(ctx context.Context) error {
	if err := r.ensurePushed(ctx, r.cfg.Pushes); err != nil {
		return err
	}
	// One untimed pull first, so both registries start from the same
	// page-cache state and the connection is open.
	if err := r.pull(ctx, r.pushed[0]); err != nil {
		return err
	}
	cpu := r.cpuNow()
	start := time.Now()
	for i := 0; i < r.cfg.Pushes; i++ {
		if err := r.pull(ctx, r.pushed[i%len(r.pushed)]); err != nil {
			return err
		}
	}
	r.res.add(Metric{Key: "pull_mb_s", Name: "single pull MB/s", Unit: "MB/s", Value: mbs(int64(r.cfg.Pushes)*r.cfg.BlobSize, time.Since(start)), Higher: true})
	r.addCPU("pull", "single pull", cpu, int64(r.cfg.Pushes)*r.cfg.BlobSize)
	return nil
}

// pullConcurrent runs Pulls pulls at once, of distinct blobs where there
// are enough, and reports all bytes / wall time.
func (r *runner) pullConcurrent(ctx context.Context) error {
	if err := r.ensurePushed(ctx, min(r.cfg.Pulls, 2*r.cfg.Pushes)); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	cpu := r.cpuNow()
	start := time.Now()
	for i := 0; i < r.cfg.Pulls; i++ {
		wg.Go(func() {
			if err := r.pull(ctx, r.pushed[i%len(r.pushed)]); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	r.res.add(Metric{Key: "pull8_mb_s", Name: fmt.Sprintf("%d concurrent pulls MB/s", r.cfg.Pulls), Unit: "MB/s", Value: mbs(int64(r.cfg.Pulls)*r.cfg.BlobSize, time.Since(start)), Higher: true})
	r.addCPU("pull8", fmt.Sprintf("%d concurrent pulls", r.cfg.Pulls), cpu, int64(r.cfg.Pulls)*r.cfg.BlobSize)
	return nil
}

// pullBufSize is the size of the buffers handed from reader to hasher.
const pullBufSize = 1 << 20

var pullBufs = sync.Pool{New: func() any { return new([pullBufSize]byte) }}

// pull GETs a blob, reads it all and checks its length and SHA-256. The
// hash runs in a second goroutine, overlapped with reading, as a client
// that verifies while it downloads would; on a machine whose cores the
// server also needs, the client's hashing still costs CPU.
func (r *runner) pull(ctx context.Context, p pushedBlob) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url("/v2/"+p.repo+"/blobs/"+p.b.digest.String()), nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(req, resp, http.StatusOK)
	}
	type chunk struct {
		buf *[pullBufSize]byte
		n   int
	}
	chunks := make(chan chunk, 4)
	sum := make(chan digest.Digest, 1)
	go func() {
		h := sha256.New()
		for c := range chunks {
			h.Write(c.buf[:c.n])
			pullBufs.Put(c.buf)
		}
		sum <- digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
	}()
	var total int64
	var rerr error
	for {
		buf := pullBufs.Get().(*[pullBufSize]byte)
		n, err := io.ReadFull(resp.Body, buf[:])
		total += int64(n)
		if n > 0 {
			chunks <- chunk{buf, n}
		} else {
			pullBufs.Put(buf)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(chunks)
	got := <-sum
	if rerr != nil {
		return fmt.Errorf("GET %s: %w", req.URL.Path, rerr)
	}
	if total != p.b.size() || got != p.b.digest {
		return fmt.Errorf("GET %s: %d bytes with digest %s, want %d bytes with that digest", req.URL.Path, total, got, p.b.size())
	}
	r.res.mu.Lock()
	r.res.Verified++
	r.res.mu.Unlock()
	return nil
}
