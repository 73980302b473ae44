package blobs

import "testing"

func TestParseByteRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header        string
		size          int64
		start, length int64
		ok, bad       bool
	}{
		{"bytes=0-0", 10, 0, 1, true, false},
		{"bytes=0-", 10, 0, 10, true, false},
		{"bytes=3-20", 10, 3, 7, true, false},
		{"bytes=-4", 10, 6, 4, true, false},
		{"bytes=-40", 10, 0, 10, true, false},
		{"bytes=0-1,3-4", 10, 0, 0, false, false}, // several ranges: whole blob
		{"items=0-1", 10, 0, 0, false, false},
		{"bytes=10-", 10, 0, 0, false, true},
		{"bytes=4-3", 10, 0, 0, false, true},
		{"bytes=-0", 10, 0, 0, false, true},
		{"bytes=x-1", 10, 0, 0, false, true},
		{"bytes=5", 10, 0, 0, false, true},
		{"bytes=0-", 0, 0, 0, false, true},
	} {
		start, length, ok, err := parseByteRange(tc.header, tc.size)
		if (err != nil) != tc.bad || ok != tc.ok || start != tc.start || length != tc.length {
			t.Errorf("%q/%d: %d %d %v %v", tc.header, tc.size, start, length, ok, err)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header      string
		first, last int64
		bad         bool
	}{
		{"0-99", 0, 99, false},
		{"bytes=100-199", 100, 199, false},
		{"bytes 5-9/*", 5, 9, false},
		{"9-5", 0, 0, true},
		{"-5", 0, 0, true},
		{"a-b", 0, 0, true},
		{"", 0, 0, true},
	} {
		first, last, err := parseContentRange(tc.header)
		if (err != nil) != tc.bad || (!tc.bad && (first != tc.first || last != tc.last)) {
			t.Errorf("%q: %d %d %v", tc.header, first, last, err)
		}
	}
}
