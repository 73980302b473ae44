package buildhook

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"

	"kiln/buildhook/build"
)

// DockerfileInfo is what kiln needs from a Dockerfile.
type DockerfileInfo struct {
	Stages []StageInfo // in order
	// CopyFromImages are the images (not stages) that COPY --from=<image>
	// and RUN --mount=from=<image> name, as written, without duplicates, in
	// order of appearance. They are build inputs like the stages' bases.
	CopyFromImages []string
	// NeedsExec lists the instructions that need a container to run (RUN),
	// with line numbers, e.g. "line 4: RUN pip install flask".
	NeedsExec []string
}

// StageInfo is one FROM of a Dockerfile.
type StageInfo struct {
	Name      string // "AS name", lowercased, may be ""
	BaseName  string // FROM after ARG expansion, e.g. "localhost:5000/python:3.8"; "scratch" stays "scratch"
	FromStage bool   // BaseName names an earlier stage (FROM builder) rather than an image
	Platform  string // --platform value after expansion, may be ""
	Line      int    // line of the FROM instruction (1-based)
}

// errParserPanic is what ParseDockerfile returns when BuildKit's parser
// panics (FuzzParseDockerfile looks for it).
var errParserPanic = errors.New("Dockerfile parser panicked")

// automatic platform args BuildKit defines from the build's platforms; kiln
// does not know them when it reads a Dockerfile.
var platformArgs = map[string]bool{
	"BUILDPLATFORM": true, "BUILDOS": true, "BUILDARCH": true, "BUILDVARIANT": true,
	"TARGETPLATFORM": true, "TARGETOS": true, "TARGETARCH": true, "TARGETVARIANT": true,
}

// envMap is a shell.EnvGetter over ordered key/values.
type envMap struct {
	keys []string
	vals map[string]string
}

func (e *envMap) Get(k string) (string, bool) { v, ok := e.vals[k]; return v, ok }
func (e *envMap) Keys() []string              { return e.keys }
func (e *envMap) set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// DockerfileError is an error at a line of a Dockerfile.
type DockerfileError struct {
	Line int // 1-based; 0 when the error has no line
	Err  error
}

func (e *DockerfileError) Error() string {
	msg := e.Err.Error()
	if e.Line <= 0 {
		return "Dockerfile: " + msg
	}
	// BuildKit's own errors often name the line already.
	msg = strings.TrimPrefix(msg, "dockerfile parse error on line "+strconv.Itoa(e.Line)+": ")
	return "Dockerfile line " + strconv.Itoa(e.Line) + ": " + msg
}

func (e *DockerfileError) Unwrap() error { return e.Err }

func lineError(line int, err error) error { return &DockerfileError{Line: line, Err: err} }

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

func rangesLine(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

// ParseDockerfile reads the stages of a Dockerfile with BuildKit's parser:
// the FROM lines with meta ARGs (ARG before the first FROM) expanded like
// BuildKit does, their defaults overridden by args; an arg with no value
// expands to "". Images COPY --from names are listed too. Errors name the
// line.
func ParseDockerfile(content []byte, args map[string]string) (info *DockerfileInfo, err error) {
	// BuildKit's parser is third-party code fed user input: never let it
	// take the process down.
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, lineError(0, fmt.Errorf("%w: %v", errParserPanic, r))
		}
	}()

	res, err := parser.Parse(bytes.NewReader(content))
	if err != nil {
		return nil, lineError(errorLine(err), err)
	}
	// A non-nil linter: a nil one panics on "# check=" comments.
	stages, metaArgs, err := instructions.Parse(res.AST, linter.New(&linter.Config{}))
	if err != nil {
		return nil, lineError(errorLine(err), err)
	}
	if len(stages) == 0 {
		return nil, lineError(0, errors.New("no FROM instruction"))
	}

	lex := shell.NewLex(res.EscapeToken)
	env := &envMap{vals: map[string]string{}}
	// Meta args, as BuildKit's buildMetaArgs: a build arg overrides the
	// default; a default may use earlier meta args.
	for _, cmd := range metaArgs {
		for _, kv := range cmd.Args {
			if v, ok := args[kv.Key]; ok {
				env.set(kv.Key, v)
				continue
			}
			if kv.Value == nil {
				continue
			}
			r, err := lex.ProcessWordWithMatches(*kv.Value, env)
			if err != nil {
				return nil, lineError(rangesLine(cmd.Location()), fmt.Errorf("ARG %s: %w", kv.Key, err))
			}
			env.set(kv.Key, r.Result)
		}
	}

	info = &DockerfileInfo{}
	names := map[string]bool{} // stage names so far (lowercased)
	allNames := map[string]bool{}
	for _, st := range stages {
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

	for _, st := range stages {
		line := rangesLine(st.Location)
		r, err := lex.ProcessWordWithMatches(st.BaseName, env)
		if err != nil {
			return nil, lineError(line, fmt.Errorf("FROM %s: %w", st.BaseName, err))
		}
		if r.Result == "" {
			return nil, lineError(line, fmt.Errorf("FROM %s: base name is blank after expanding arguments", st.BaseName))
		}
		si := StageInfo{Name: st.Name, BaseName: r.Result, Line: line}
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
			cline := rangesLine(cmd.Location())
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

// LocalRef returns the ImageRef a reference names when it points at this
// registry: its host is one of hosts (e.g. "localhost:5000",
// "127.0.0.1:5000", plus configured hostnames), compared case-insensitively.
// A reference with no tag means "latest". A digest reference
// (name@sha256:...) is never watched (returns ok=false), nor is one that
// does not parse.
func LocalRef(ref string, hosts []string) (build.ImageRef, bool) {
	domain, r, ok := watchableRef(ref)
	if !ok {
		return build.ImageRef{}, false
	}
	for _, h := range hosts {
		if strings.EqualFold(domain, h) {
			return r, true
		}
	}
	return build.ImageRef{}, false
}

// watchableRef parses an image reference a tag watch can follow: its
// registry host and its repository path and tag ("latest" when it has
// none). A digest reference, or one that does not parse, is not watchable.
func watchableRef(ref string) (domain string, r build.ImageRef, ok bool) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", build.ImageRef{}, false
	}
	if _, isDigest := named.(reference.Digested); isDigest {
		return "", build.ImageRef{}, false
	}
	tag := "latest"
	if t, isTagged := named.(reference.Tagged); isTagged {
		tag = t.Tag()
	}
	return reference.Domain(named), build.ImageRef{Repo: reference.Path(named), Tag: tag}, true
}
