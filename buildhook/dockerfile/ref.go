package dockerfile

import (
	"strings"

	"github.com/distribution/reference"

	"kiln/buildhook/build"
)

// LocalRef returns the ImageRef a reference names when it points at this
// registry: its host is one of hosts (e.g. "localhost:5000",
// "127.0.0.1:5000", plus configured hostnames), compared case-insensitively.
// A reference with no tag means "latest". A digest reference
// (name@sha256:...) is never watched (returns ok=false), nor is one that
// does not parse.
func LocalRef(ref string, hosts []string) (build.ImageRef, bool) {
	domain, r, ok := Watchable(ref)
	if !ok {
		return build.ImageRef{}, false
	}
	for _, h := range hosts {
		if strings.EqualFold(domain, h) {
			return r, true
		}
	}
	return build.ImageRef{}, false
}

// Watchable parses an image reference a tag watch can follow: its
// registry host and its repository path and tag ("latest" when it has
// none). A digest reference, or one that does not parse, is not watchable.
func Watchable(ref string) (domain string, r build.ImageRef, ok bool) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", build.ImageRef{}, false
	}
	if _, isDigest := named.(reference.Digested); isDigest {
		return "", build.ImageRef{}, false
	}
	tag := "latest"
	if t, isTagged := named.(reference.Tagged); isTagged {
		tag = t.Tag()
	}
	return reference.Domain(named), build.ImageRef{Repo: reference.Path(named), Tag: tag}, true
}
