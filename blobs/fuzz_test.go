package blobs

import (
	"math"
	"strconv"
	"testing"
)

// FuzzParseByteRange checks that whatever Range header a client sends, a
// satisfiable answer stays inside the blob.
func FuzzParseByteRange(f *testing.F) {
	for _, seed := range []struct {
		header string
		size   int64
	}{
		{"bytes=0-0", 10}, {"bytes=0-", 10}, {"bytes=3-20", 10}, {"bytes=-4", 10},
		{"bytes=-40", 10}, {"bytes=0-1,3-4", 10}, {"items=0-1", 10}, {"bytes=10-", 10},
		{"bytes=4-3", 10}, {"bytes=-0", 10}, {"bytes=x-1", 10}, {"bytes=5", 10},
		{"bytes=0-", 0}, {"bytes=-1", 0}, {"bytes=-9223372036854775808", 5},
		{"bytes=9223372036854775807-", math.MaxInt64}, {"bytes=0-9223372036854775807", math.MaxInt64},
		{"bytes=-9223372036854775807", math.MaxInt64}, {"bytes=+1-+2", 10}, {"bytes= 1 - 2 ", 10},
		{"bytes=--1", 10}, {"bytes=1--2", 10}, {"bytes=0x10-", 100}, {"bytes=99999999999999999999-", 10},
		{"bytes=\x00-1", 10}, {"", 10},
	} {
		f.Add(seed.header, seed.size)
	}
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -(size + 1) // sizes come from the store: never negative
		}
		start, length, ok, err := parseByteRange(header, size)
		if err != nil || !ok {
			if start != 0 || length != 0 || (ok && err != nil) {
				t.Fatalf("%q/%d: refusal with values %d %d %v %v", header, size, start, length, ok, err)
			}
			return
		}
		if start < 0 || length <= 0 || start >= size || length > size-start {
			t.Fatalf("%q/%d: range out of bounds: start %d length %d", header, size, start, length)
		}
		// Stable: the range written back in canonical form gives the same answer.
		canon := "bytes=" + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(start+length-1, 10)
		s2, l2, ok2, err2 := parseByteRange(canon, size)
		if err2 != nil || !ok2 || s2 != start || l2 != length {
			t.Fatalf("%q/%d: canonical %q gives %d %d %v %v, want %d %d", header, size, canon, s2, l2, ok2, err2, start, length)
		}
	})
}

// FuzzParseContentRange checks that an accepted upload Content-Range is an
// ordered, non-negative range whose length fits an int64.
func FuzzParseContentRange(f *testing.F) {
	for _, seed := range []string{
		"0-99", "bytes=100-199", "bytes 5-9/*", "bytes 5-9/10", "9-5", "-5", "a-b", "", "0-0",
		"0-9223372036854775807", "1-9223372036854775807", "9223372036854775807-9223372036854775807",
		"-1--1", "+0-+1", " 0-1 ", "bytes=bytes=0-1", "0-1/2/3", "0-1-2", "\x000-1", "0--1",
		"99999999999999999999-99999999999999999999",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		first, last, err := parseContentRange(header)
		if err != nil {
			return
		}
		if first < 0 || last < first {
			t.Fatalf("%q: accepted bad range %d-%d", header, first, last)
		}
		if n := last - first + 1; n <= 0 {
			t.Fatalf("%q: range %d-%d has length %d (overflow)", header, first, last, n)
		}
		canon := strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10)
		f2, l2, err2 := parseContentRange(canon)
		if err2 != nil || f2 != first || l2 != last {
			t.Fatalf("%q: canonical %q gives %d %d %v", header, canon, f2, l2, err2)
		}
	})
}
