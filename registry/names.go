package registry

import "regexp"

// The distribution-spec grammar for repository names and tags, compiled once.
var (
	nameRegexp = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRegexp  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLength bounds a repository name, as the reference registry does.
const maxNameLength = 255

func validName(name string) bool {
	return len(name) <= maxNameLength && nameRegexp.MatchString(name)
}

func validTag(tag string) bool { return tagRegexp.MatchString(tag) }
