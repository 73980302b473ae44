package buildhook

import (
	"encoding/json"
	"errors"
	"io"
)

// transientError marks a failure worth retrying: a daemon that did not
// answer, a connection that broke.
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func transient(err error) error {
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

func jsonDecoder(r io.Reader) *json.Decoder { return json.NewDecoder(r) }
