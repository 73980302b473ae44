package metrics

import (
	"net/http"
	"strconv"
	"strings"
)

// Label values must come from fixed sets: every distinct value is a series
// kept for the life of the process, and requests are hostile input.

// methodLabel is the request method if HTTP defines it, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// statusLabel is the status code if it is a standard one, else "other".
func statusLabel(status int) string {
	if http.StatusText(status) == "" {
		return "other"
	}
	return strconv.Itoa(status)
}

// ruleLabel keeps configured rule names (a bounded set) and folds the
// rules of adopted images, which pushes create, into "auto".
func ruleLabel(rule string) string {
	if strings.HasPrefix(rule, "auto:") {
		return "auto"
	}
	return rule
}
