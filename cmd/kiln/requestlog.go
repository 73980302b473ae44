package main

import (
	"net/http"

	"kiln/accesslog"
	"kiln/auth"
	"kiln/config"
)

// accessLines is the access log's choice for log.requests (which Validate
// has checked).
func accessLines(l config.Log) accesslog.Lines {
	switch l.Requests {
	case config.LogRequestsErrors:
		return accesslog.ErrorLines
	case config.LogRequestsNone:
		return accesslog.NoLines
	}
	return accesslog.AllLines
}

// authenticated puts h behind authentication, quieting the builders'
// access lines, which needs the user authentication names.
func authenticated(sec *security, h http.Handler) http.Handler {
	return sec.wrap(quietBuilders(h))
}

// quietBuilders puts the access lines of kiln's own builders at debug:
// a build's pulls and pushes would drown the users' requests.
// builderUser shadows any htpasswd user of that name, so only the builders
// carry it.
func quietBuilders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.User(r.Context()) == builderUser {
			accesslog.Quiet(r.Context())
		}
		next.ServeHTTP(w, r)
	})
}
