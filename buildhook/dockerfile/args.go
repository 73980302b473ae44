package dockerfile

import (
	"fmt"
	"strings"
)

// GlobalArgs are the variables FROM lines see, as KEY=value: preset
// first (BuildKit's automatic platform arguments, when the caller knows
// them), then the meta ARGs as BuildKit's buildMetaArgs does. A build arg
// overrides a default; a default may use earlier variables; an ARG with
// neither is left out.
func (f *File) GlobalArgs(args map[string]string, preset []string) ([]string, error) {
	env := &envMap{vals: map[string]string{}}
	for _, kv := range preset {
		k, v, _ := strings.Cut(kv, "=")
		env.set(k, v)
	}
	lex := f.Lex()
	for _, cmd := range f.MetaArgs {
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
				return nil, lineError(Line(cmd.Location()), fmt.Errorf("ARG %s: %w", kv.Key, err))
			}
			env.set(kv.Key, r.Result)
		}
	}
	out := make([]string, len(env.keys))
	for i, k := range env.keys {
		out[i] = k + "=" + env.vals[k]
	}
	return out, nil
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
