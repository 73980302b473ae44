package build

// Unwatched is an image a rule's Dockerfile names that no push or upstream
// watch can move: a rule built only on such images never rebuilds.
type Unwatched struct {
	Name string // as the Dockerfile names it, ARGs expanded
	Why  string
}
