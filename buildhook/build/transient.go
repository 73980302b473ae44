package build

import "errors"

// transientError marks a failure worth retrying: a daemon that did not
// answer, a connection that broke.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// Transient marks err as worth retrying (see IsTransient); nil stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

// IsTransient reports whether err is worth retrying.
func IsTransient(err error) bool {
	var t transientError
	return errors.As(err, &t)
}
