package auth

import (
	"encoding/json"
	"net/http"
	"time"

	"kiln/distspec"
)

// maxTokenForm bounds the body of an OAuth2 token request: a few short
// fields.
const maxTokenForm = 16 << 10

// serveToken answers a token request of the distribution token protocol:
// GET with optional Basic credentials, or the OAuth2 password grant
// (POST form) that containerd tries first. Valid credentials get a token
// for their user, none an anonymous token, which only reads.
func (a *Authenticator) serveToken(w http.ResponseWriter, r *http.Request) {
	var user, password string
	switch r.Method {
	case http.MethodGet:
		if r.Header.Get("Authorization") != "" {
			u, p, ok := r.BasicAuth()
			if !ok {
				w.Header().Set("WWW-Authenticate", a.basicChallenge)
				distspec.WriteError(w, distspec.Unauthorized.WithMessage("the token service takes Basic credentials"))
				return
			}
			user, password = u, p
		}
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
		if err := r.ParseForm(); err != nil {
			distspec.WriteError(w, distspec.Unsupported.WithStatus(http.StatusBadRequest).WithMessage("token request: a form of at most 16 KiB"))
			return
		}
		// Only the body counts: credentials in a URL end up in logs.
		if g := r.PostForm.Get("grant_type"); g != "password" {
			distspec.WriteError(w, distspec.Unsupported.WithStatus(http.StatusBadRequest).WithMessage("grant_type must be password"))
			return
		}
		user, password = r.PostForm.Get("username"), r.PostForm.Get("password")
	default:
		w.Header().Set("Allow", "GET, POST")
		distspec.WriteError(w, distspec.Unsupported.WithMessage("use GET, or POST for the OAuth2 password grant"))
		return
	}
	fingerprint := ""
	if user != "" || password != "" { // empty credentials are none
		if !a.login(w, r, user, password) {
			return
		}
		fingerprint, _ = a.fingerprint(user)
	}
	token, exp := a.tokens.issue(user, fingerprint)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   int(tokenTTL.Seconds()),
		"issued_at":    exp.Add(-tokenTTL).UTC().Format(time.RFC3339),
	})
}
