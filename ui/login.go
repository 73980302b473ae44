package ui

import (
	"net/http"

	"kiln/auth/identity"
)

// loginPath asks for a login. It is at the root because browsers send
// Basic credentials unasked only below the path that challenged them, and
// the actions the login is for are under /kiln/v1.
const loginPath = Root + "?login=1"

// login asks an anonymous browser to log in; a logged-in one goes on to the repositories. It is the way in when
// anonymous pull shows the pages without a login but actions need one.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if h.opts.Challenge == "" || identity.User(r.Context()) != "" {
		http.Redirect(w, r, Root, http.StatusSeeOther)
		return
	}
	w.Header().Set("WWW-Authenticate", h.opts.Challenge)
	h.fail(w, r, http.StatusUnauthorized, "log in to trigger builds and run GC")
}
