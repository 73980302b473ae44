package accesslog

import (
	"context"
	"log/slog"
)

// ContextHandler wraps h so that every record logged with a request's
// context (InfoContext, LogAttrs with r.Context()) carries its request_id:
// the lines a handler logs can be matched to the request's access line.
func ContextHandler(h slog.Handler) slog.Handler { return contextHandler{h} }

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		// Clone: the record's attributes may share an array with the caller.
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
