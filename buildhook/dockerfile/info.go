package dockerfile

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Info is what kiln needs from a Dockerfile to watch and build it.
type Info struct {
	Stages []Stage // in order
	// CopyFromImages are the images (not stages) that COPY --from=<image>
	// and RUN --mount=from=<image> name, as written, without duplicates, in
	// order of appearance. They are build inputs like the stages' bases.
	CopyFromImages []string
	// NeedsExec lists the instructions that need a container to run (RUN),
	// with line numbers, e.g. "line 4: RUN pip install flask".
	NeedsExec []string
}

// Stage is one FROM of a Dockerfile.
type Stage struct {
	Name      string // "AS name", lowercased, may be ""
	BaseName  string // FROM after ARG expansion, e.g. "localhost:5000/python:3.8"; "scratch" stays "scratch"
	FromStage bool   // BaseName names an earlier stage (FROM builder) rather than an image
	Platform  string // --platform value after expansion, may be ""
	Line      int    // line of the FROM instruction (1-based)
}

// automatic platform args BuildKit defines from the build's platforms; kiln
// does not know them when it reads a Dockerfile.
var platformArgs = map[string]bool{
	"BUILDPLATFORM": true, "BUILDOS": true, "BUILDARCH": true, "BUILDVARIANT": true,
	"TARGETPLATFORM": true, "TARGETOS": true, "TARGETARCH": true, "TARGETVARIANT": true,
}

// Parse reads the stages of a Dockerfile: the FROM lines with the meta
// ARGs expanded (see GlobalArgs), their defaults overridden by args; an arg
// with no value expands to "". Images COPY --from names are listed too.
// Errors are *Error, naming the line.
func Parse(content []byte, args map[string]string) (*Info, error) {
	f, err := Read(content)
	if err != nil {
		return nil, err
	}
	global, err := f.GlobalArgs(args, nil)
	if err != nil {
		return nil, err
	}
	env := shell.EnvsFromSlice(global)
	lex := f.Lex()

	info := &Info{}
	names := map[string]bool{} // stage names so far (lowercased)
	allNames := map[string]bool{}
	for _, st := range f.Stages {
		if st.Name != "" {
			allNames[st.Name] = true
		}
	}
	seenCopy := map[string]bool{}
	addCopyFrom := func(from string, line int, what string) error {
		if from == "" || allNames[strings.ToLower(from)] {
			return nil
		}
		if _, err := strconv.Atoi(from); err == nil {
			return nil // a stage index
		}
		if _, err := reference.ParseNormalizedNamed(from); err != nil {
			return lineError(line, fmt.Errorf("%s: invalid image reference %q: %w", what, from, err))
		}
		if !seenCopy[from] {
			seenCopy[from] = true
			info.CopyFromImages = append(info.CopyFromImages, from)
		}
		return nil
	}

	for _, st := range f.Stages {
		line := Line(st.Location)
		r, err := lex.ProcessWordWithMatches(st.BaseName, env)
		if err != nil {
			return nil, lineError(line, fmt.Errorf("FROM %s: %w", st.BaseName, err))
		}
		if r.Result == "" {
			return nil, lineError(line, fmt.Errorf("FROM %s: base name is blank after expanding arguments", st.BaseName))
		}
		si := Stage{Name: st.Name, BaseName: r.Result, Line: line}
		switch {
		case names[si.BaseName]:
			si.FromStage = true
		case si.BaseName == "scratch":
		default:
			if _, err := reference.ParseNormalizedNamed(si.BaseName); err != nil {
				return nil, lineError(line, fmt.Errorf("FROM %s: invalid image reference %q: %w", st.BaseName, si.BaseName, err))
			}
		}
		if st.Platform != "" {
			p, err := lex.ProcessWordWithMatches(st.Platform, env)
			if err != nil {
				return nil, lineError(line, fmt.Errorf("FROM --platform=%s: %w", st.Platform, err))
			}
			si.Platform = p.Result
			// $BUILDPLATFORM and friends are only known at build time:
			// keep the expression as written.
			for k := range p.Unmatched {
				if platformArgs[k] {
					si.Platform = st.Platform
					break
				}
			}
		}
		info.Stages = append(info.Stages, si)
		if st.Name != "" {
			names[st.Name] = true
		}

		for _, cmd := range st.Commands {
			cline := Line(cmd.Location())
			switch c := cmd.(type) {
			case *instructions.CopyCommand:
				if c.From == "" {
					continue
				}
				if strings.ContainsAny(c.From, "$") {
					return nil, lineError(cline, fmt.Errorf("COPY --from=%s: variable expansion is not supported for --from", c.From))
				}
				if err := addCopyFrom(c.From, cline, "COPY --from"); err != nil {
					return nil, err
				}
			case *instructions.RunCommand:
				info.NeedsExec = append(info.NeedsExec, fmt.Sprintf("line %d: %s", cline, c.String()))
				for _, m := range instructions.GetMounts(c) {
					// A from with variables depends on the stage's
					// environment: BuildKit resolves it at build time.
					if m == nil || strings.Contains(m.From, "$") {
						continue
					}
					if err := addCopyFrom(m.From, cline, "RUN --mount from"); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return info, nil
}
