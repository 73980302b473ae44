package testbed

import (
	"os"
	"strings"
)

// environ is the process environment minus the variables drop picks:
// settings a started tool would read on its own, against the caller's.
func environ(drop func(name string) bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !drop(name) {
			env = append(env, kv)
		}
	}
	return env
}
