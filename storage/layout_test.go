package storage

import (
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// What layout.go builds it parses back.
func TestParseRepoPath(t *testing.T) {
	t.Parallel()
	d := digest.FromString("x")
	for _, c := range []struct {
		p          string
		repo, kind string
		rest       []string
		ok         bool
	}{
		{layerLinkPath("a/b", d), "a/b", layersDir, []string{"sha256", d.Encoded()}, true},
		{manifestLinkPath("a", d), "a", manifestsDir, []string{"sha256", d.Encoded()}, true},
		{tagPath("a/b/c", "v1"), "a/b/c", tagsDir, []string{"v1"}, true},
		{referrerPath("a", d, d), "a", referrersDir, []string{"sha256", d.Encoded(), "sha256-" + d.Encoded()}, true},
		{proxiedPath("mirror/x"), "mirror/x", proxiedFile, []string{}, true},
		{repoPath("a/b"), "", "", nil, false},
		{reposRoot + "/_junk", "", "_junk", []string{}, true},
	} {
		repo, kind, rest, ok := parseRepoPath(c.p)
		if repo != c.repo || kind != c.kind || !slices.Equal(rest, c.rest) || ok != c.ok {
			t.Errorf("parseRepoPath(%q) = %q %q %q %v, want %q %q %q %v", c.p, repo, kind, rest, ok, c.repo, c.kind, c.rest, c.ok)
		}
	}
	if got, ok := parseBlobPath(blobPath(d)); !ok || got != d {
		t.Errorf("parseBlobPath(blobPath(d)) = %s %v", got, ok)
	}
	if repo, tag, ok := parseAdoptionPath(adoptionPath("a/b", "v1")); !ok || repo != "a/b" || tag != "v1" {
		t.Errorf("parseAdoptionPath: %q %q %v", repo, tag, ok)
	}
	for _, p := range []string{"/autorebase/x", "/autorebase/_tags/v1", "/autorebase/a/_tags/v1/x", "/builds/a/_tags/v1"} {
		if _, _, ok := parseAdoptionPath(p); ok {
			t.Errorf("parseAdoptionPath(%q) ok", p)
		}
	}
}
