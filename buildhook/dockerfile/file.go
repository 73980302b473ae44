package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// File is a Dockerfile's instructions, as BuildKit reads them.
type File struct {
	Stages   []instructions.Stage
	MetaArgs []instructions.ArgCommand // the ARGs before the first FROM
	Escape   rune                      // the escape directive's character
}

// Read parses a Dockerfile with BuildKit's parser and linter. It never
// panics: a panic of the parser is an error wrapping ErrParserPanic.
// Expanding an instruction changes it, so whoever expands for several
// platforms reads the file again for each.
func Read(content []byte) (f *File, err error) {
	// BuildKit's parser is third-party code fed user input: never let it
	// take the process down.
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, lineError(0, fmt.Errorf("%w: %v", ErrParserPanic, r))
		}
	}()

	res, err := parser.Parse(bytes.NewReader(content))
	if err != nil {
		return nil, lineError(errorLine(err), err)
	}
	// A real linter: a nil one panics on a "# check=" comment.
	stages, metaArgs, err := instructions.Parse(res.AST, linter.New(&linter.Config{}))
	if err != nil {
		return nil, lineError(errorLine(err), err)
	}
	if len(stages) == 0 {
		return nil, lineError(0, errors.New("no FROM instruction"))
	}
	return &File{Stages: stages, MetaArgs: metaArgs, Escape: res.EscapeToken}, nil
}

// Lex is a word expander with the file's escape character.
func (f *File) Lex() *shell.Lex { return shell.NewLex(f.Escape) }

// ReadInstruction parses one instruction, such as a base image's ONBUILD
// trigger. Like Read, it never panics.
func ReadInstruction(text string) (c instructions.Command, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%w: %v", ErrParserPanic, r)
		}
	}()
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, fmt.Errorf("%d instructions, want one", len(res.AST.Children))
	}
	return instructions.ParseCommand(res.AST.Children[0])
}
