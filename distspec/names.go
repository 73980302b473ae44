package distspec

// The distribution-spec grammar for repository names and tags:
//
//	name      = component ("/" component)*
//	component = [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
//	tag       = [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
//
// checked by hand rather than with regular expressions: every request
// checks its name, and the regexp engine cost more than the rest of the
// routing (FuzzNameAndTag holds both to the spec's expressions).

// maxNameLength bounds a repository name, as the reference registry does.
const maxNameLength = 255

// ValidName reports whether name is a repository name the spec allows.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > maxNameLength {
		return false
	}
	for start := 0; ; {
		end := start
		for end < len(name) && name[end] != '/' {
			end++
		}
		if !validComponent(name[start:end]) {
			return false
		}
		if end == len(name) {
			return true
		}
		start = end + 1
	}
}

func validComponent(c string) bool {
	if len(c) == 0 || !lowerAlnum(c[0]) {
		return false
	}
	for i := 0; i < len(c); {
		for i < len(c) && lowerAlnum(c[i]) {
			i++
		}
		if i == len(c) {
			break
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if i == len(c) || !lowerAlnum(c[i]) {
			return false
		}
	}
	return true
}

func lowerAlnum(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }

// ValidTag reports whether tag is a tag the spec allows.
func ValidTag(tag string) bool {
	if len(tag) == 0 || len(tag) > 128 {
		return false
	}
	if c := tag[0]; !(lowerAlnum(c) || c >= 'A' && c <= 'Z' || c == '_') {
		return false
	}
	for i := 1; i < len(tag); i++ {
		c := tag[i]
		if !(lowerAlnum(c) || c >= 'A' && c <= 'Z' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
