package dockerfile

import (
	"errors"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// ErrParserPanic is what Read and Parse return when BuildKit's parser
// panics: the fuzz targets look for it.
var ErrParserPanic = errors.New("Dockerfile parser panicked")

// Error is an error at a line of a Dockerfile.
type Error struct {
	Line int // 1-based; 0 when the error has no line
	Err  error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	if e.Line <= 0 {
		return "Dockerfile: " + msg
	}
	// BuildKit's own errors often name the line already.
	msg = strings.TrimPrefix(msg, "dockerfile parse error on line "+strconv.Itoa(e.Line)+": ")
	return "Dockerfile line " + strconv.Itoa(e.Line) + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

func lineError(line int, err error) error { return &Error{Line: line, Err: err} }

// errorLine is the first line a BuildKit parse error is located at, or 0.
func errorLine(err error) int {
	var le *parser.LocationError
	if errors.As(err, &le) {
		for _, loc := range le.Locations {
			if len(loc) > 0 {
				return loc[0].Start.Line
			}
		}
	}
	var ue *instructions.UnknownInstructionError
	if errors.As(err, &ue) {
		return ue.Line
	}
	return 0
}

// Line is the first line of a BuildKit location, or 0.
func Line(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}
