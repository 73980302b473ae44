package registry

import (
	"net/http"

	"github.com/gorilla/mux"

	"kiln/storage"
)

func newRouter(store *storage.Store, opts Options) http.Handler {
	r := mux.NewRouter()
	r.SkipClean(true)
	return r
}
