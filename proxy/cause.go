package proxy

import (
	"errors"
	"net/url"
	"strings"
)

// requestCause is why a request to the upstream at base failed, without the
// request's URL: the cause of the attempt that used base's scheme when the
// client tried several, else err's own text.
func requestCause(err error, base string) string {
	var attempts []*url.Error
	collect(err, &attempts)
	// Some joined errors only answer errors.As (with their first match).
	if u := (*url.Error)(nil); len(attempts) == 0 && errors.As(err, &u) {
		attempts = append(attempts, u)
	}
	for _, a := range attempts {
		if sameScheme(a.URL, base) {
			return a.Err.Error()
		}
	}
	if len(attempts) > 0 {
		return attempts[0].Err.Error()
	}
	return err.Error()
}

// collect gathers the *url.Error in err's tree, joined errors included.
func collect(err error, out *[]*url.Error) {
	if u, ok := err.(*url.Error); ok {
		*out = append(*out, u)
		return
	}
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			collect(inner, out)
		}
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			collect(inner, out)
		}
	}
}

func sameScheme(a, b string) bool {
	sa, _, _ := strings.Cut(a, "://")
	sb, _, _ := strings.Cut(b, "://")
	return sa != "" && sa == sb
}
