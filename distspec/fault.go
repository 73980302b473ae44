package distspec

import (
	"context"
	"errors"
	"net"
	"net/http"
	"syscall"
)

// StorageFault turns an unexpected storage error into the error the client
// gets: always a 5xx (nothing was stored), with a message that says what
// kind of fault it was so an operator reading the client's output knows
// where to look, but without the backend's own text, which can carry paths,
// bucket names or keys. The full error belongs in the server log.
func StorageFault(err error) *Error {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return Internal.WithStatus(http.StatusInsufficientStorage).
			WithMessage("storage is full: nothing was stored")
	case errors.Is(err, syscall.EROFS):
		return Internal.WithStatus(http.StatusServiceUnavailable).
			WithMessage("storage is read-only: nothing was stored")
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return Internal.WithStatus(http.StatusServiceUnavailable).
			WithMessage("storage backend timed out; try again")
	case errors.Is(err, syscall.EIO):
		return Internal.WithMessage("storage I/O error")
	}
	return Internal.WithMessage("storage backend error")
}
