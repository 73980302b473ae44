// Package rebase is the builder behind strategy: rebase and autorebase. It
// does not run a Dockerfile: it swaps the layers of the base an image was
// built on (named by its base annotations, see build.AnnotationBaseName)
// for the new base's, merges the new base's config where the image kept
// the old one's, and pushes the result's blobs, handing the image to
// Finalize (or, from Build, pushing it to the job's staging tag). When that
// cannot be done safely it returns ErrNotApplicable and the caller builds
// in full instead.
package rebase
