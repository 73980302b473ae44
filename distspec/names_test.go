package distspec

import (
	"regexp"
	"strings"
	"testing"
)

// The spec's expressions, the oracle for ValidName and ValidTag.
var (
	nameRegexp = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRegexp  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// FuzzNameAndTag checks the repository-name and tag checks: never a
// panic, the spec's expressions' answer, and nothing accepted that could
// escape a path or break the grammar's limits.
func FuzzNameAndTag(f *testing.F) {
	for _, seed := range []string{
		"library/busybox", "a", "a/b/c", "a-b__c.d", "a--b", "x" + strings.Repeat("a", 254), strings.Repeat("a", 256),
		"../etc/passwd", "a/../b", "a//b", "/a", "a/", "A", "a\x00b", "a.", ".a", "a..b", "a/.b", "%2e%2e",
		"a___b", "a_.b", "a__b", "a-_b", "a_-b", "a.-b", "a/b-", "a/-b", "a----b/c.d_e__f", "latest", "v1.0.0", "_tag", ".tag", "-tag", strings.Repeat("t", 128), strings.Repeat("t", 129),
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"sha512:" + strings.Repeat("ab", 64), "sha256:../../../etc/passwd", "sha256:", ":", "md5:abc",
		"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "\xff\xfe", "a\nb", "tag\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidName(s), len(s) <= maxNameLength && nameRegexp.MatchString(s); got != want {
			t.Fatalf("ValidName(%q) = %v, the spec's expression says %v", s, got, want)
		}
		if got, want := ValidTag(s), tagRegexp.MatchString(s); got != want {
			t.Fatalf("ValidTag(%q) = %v, the spec's expression says %v", s, got, want)
		}
		if ValidName(s) {
			if len(s) == 0 || len(s) > 255 {
				t.Fatalf("name of length %d accepted", len(s))
			}
			if strings.Contains(s, "..") || strings.Contains(s, "//") || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
				t.Fatalf("name %q accepted", s)
			}
			if strings.ToLower(s) != s || strings.ContainsAny(s, "\x00\\\n%:") {
				t.Fatalf("name %q accepted", s)
			}
			if !nameRegexp.MatchString(s) {
				t.Fatalf("name %q accepted against the grammar", s)
			}
		}
		if ValidTag(s) {
			if len(s) == 0 || len(s) > 128 {
				t.Fatalf("tag of length %d accepted", len(s))
			}
			if strings.ContainsAny(s, "/\\\x00:") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "-") {
				t.Fatalf("tag %q accepted", s)
			}
		}
	})
}
