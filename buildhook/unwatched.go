package buildhook

import (
	"net"
	"strings"

	"kiln/buildhook/dockerfile"
)

// whyUnwatched says why name is neither this registry's nor a mirrored
// upstream's, in the terms a user can act on.
func whyUnwatched(name string, hosts, upstreams []string) string {
	domain, _, ok := dockerfile.Watchable(name)
	if !ok {
		return "not a tag reference (a digest cannot move)"
	}
	if host, port, err := net.SplitHostPort(domain); err == nil && isLoopbackName(host) {
		for _, h := range hosts {
			if hh, hp, err := net.SplitHostPort(h); err == nil && isLoopbackName(hh) && hp != port {
				return domain + " is not this registry, which listens on " + hp + " (pass the right address, e.g. a REGISTRY build arg)"
			}
		}
	}
	if domain == "docker.io" {
		return "docker.io is not mirrored (add it under proxy: to watch it)"
	}
	known := append(append([]string{}, hosts...), upstreams...)
	return domain + " is neither this registry nor a mirrored upstream (known: " + strings.Join(known, ", ") + ")"
}

func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
