package blobs

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

var errRange = errors.New("invalid range")

// parseByteRange parses a Range header holding one byte range
// ("bytes=a-b", "bytes=a-", "bytes=-n") against a blob of size bytes and
// returns the first offset and the length. ok is false when the header asks
// for several ranges or is not a byte range, in which case the whole blob is
// served; errRange means the range cannot be satisfied (416).
func parseByteRange(header string, size int64) (start, length int64, ok bool, err error) {
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, errRange
	}
	if first == "" { // suffix: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false, errRange
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	start, err = strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 || start >= size {
		return 0, 0, false, errRange
	}
	end := size - 1
	if last != "" {
		end, err = strconv.ParseInt(last, 10, 64)
		if err != nil || end < start {
			return 0, 0, false, errRange
		}
		end = min(end, size-1)
	}
	return start, end - start + 1, true, nil
}

// parseContentRange parses an upload chunk's Content-Range ("a-b", also
// written "bytes=a-b" or "bytes a-b/*" by some clients) into its first and
// last byte offsets.
func parseContentRange(header string) (first, last int64, err error) {
	s := strings.TrimSpace(header)
	s = strings.TrimPrefix(s, "bytes=")
	s = strings.TrimPrefix(s, "bytes ")
	s, _, _ = strings.Cut(s, "/")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, errRange
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	// last-first+1, the chunk's length, must fit an int64: 0-MaxInt64
	// would wrap to a negative length.
	if err1 != nil || err2 != nil || first < 0 || last < first || last-first == math.MaxInt64 {
		return 0, 0, errRange
	}
	return first, last, nil
}
