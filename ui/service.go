package ui

import (
	"context"

	"kiln/buildhook"
)

// ServiceBuilds reads builds and rules from a running build service.
type ServiceBuilds struct{ Service *buildhook.Service }

func (s ServiceBuilds) Find(ctx context.Context, q buildhook.Query) ([]*buildhook.Record, bool, error) {
	return s.Service.Records().Find(ctx, q)
}

func (s ServiceBuilds) Get(ctx context.Context, id string) (*buildhook.Record, error) {
	return s.Service.Records().Get(ctx, id)
}

func (s ServiceBuilds) Rules() []Rule {
	var out []Rule
	for _, r := range s.Service.RuleGraph().Rules() {
		v := Rule{Name: r.Name, Builder: r.Builder, Auto: r.Auto}
		for _, b := range r.Bases {
			v.Bases = append(v.Bases, b.String())
		}
		for _, t := range r.Tags {
			v.Tags = append(v.Tags, t.String())
		}
		out = append(out, v)
	}
	return out
}
