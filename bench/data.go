package bench

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"time"

	"github.com/opencontainers/go-digest"
)

// tailLen is how many bytes at the end of each blob are its own: blobs of
// one size share one random buffer and differ in their last bytes, so each
// is new to the registry while the client hashes the shared part once.
const tailLen = 32

// blobSet makes fresh random blobs of one size. Everything is generated
// and hashed before any timing starts.
type blobSet struct {
	size  int64
	base  []byte // random; blobs are base[:size-tailLen] + their own tail
	state []byte // SHA-256 state after base[:size-tailLen]
	rng   *mrand.ChaCha8
	// hashMBs is how fast this client hashed the shared part (MB/s).
	hashMBs float64
}

// blob is one generated blob.
type blob struct {
	set    *blobSet
	tail   []byte
	digest digest.Digest
}

func newBlobSet(size int64) (*blobSet, error) {
	if size < 1 {
		return nil, fmt.Errorf("blob size %d: must be at least 1 byte", size)
	}
	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	s := &blobSet{size: size, rng: mrand.NewChaCha8(seed)}
	shared := size - tailLen
	if shared < 0 {
		shared = 0
	}
	s.base = make([]byte, shared)
	s.rng.Read(s.base)
	h := sha256.New()
	start := time.Now()
	h.Write(s.base)
	if el := time.Since(start); shared >= 1<<20 && el > 0 {
		s.hashMBs = float64(shared) / 1e6 / el.Seconds()
	}
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	s.state = st
	return s, nil
}

// next returns a blob no registry has seen: the shared part plus a fresh
// random tail (the first 8 bytes of it a nanosecond clock, for good measure).
func (s *blobSet) next() (*blob, error) {
	n := s.size - int64(len(s.base))
	tail := make([]byte, n)
	s.rng.Read(tail)
	if n >= 8 {
		binary.BigEndian.PutUint64(tail, uint64(time.Now().UnixNano()))
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.state); err != nil {
		return nil, err
	}
	h.Write(tail)
	return &blob{set: s, tail: tail, digest: digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))}, nil
}

func (b *blob) size() int64 { return b.set.size }

// section returns the bytes [off, off+n) of the blob without copying.
func (b *blob) section(off, n int64) io.Reader {
	base := int64(len(b.set.base))
	end := off + n
	var rs []io.Reader
	if off < base {
		rs = append(rs, bytes.NewReader(b.set.base[off:min(end, base)]))
	}
	if end > base {
		rs = append(rs, bytes.NewReader(b.tail[max(off, base)-base:end-base]))
	}
	if len(rs) == 1 {
		return rs[0]
	}
	return io.MultiReader(rs...)
}

// blobOf returns a blob of exactly content.
func blobOf(content []byte) *blob {
	return &blob{set: &blobSet{size: int64(len(content)), base: content}, digest: digest.FromBytes(content)}
}
