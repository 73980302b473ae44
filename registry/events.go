package registry

import (
	"net/http"

	"kiln/accesslog"
	"kiln/auth/identity"
	"kiln/notify"
	"kiln/storage"
)

// publish writes the events of an action to the outbox (Options.Notify)
// before the action is answered: once the client has its answer, the
// webhooks will hear of it even if kiln dies now. An error answers 500;
// the action is stored, and the client's retry publishes again.
func (a *api) publish(r *http.Request, events ...notify.Event) error {
	if a.opts.Notify == nil {
		return nil
	}
	for _, e := range events {
		e.Actor = identity.User(r.Context())
		e.Addr = r.RemoteAddr
		e.Method = r.Method
		e.Agent = r.UserAgent()
		e.Request = accesslog.RequestID(r.Context())
		if err := a.opts.Notify.Publish(r.Context(), e); err != nil {
			return a.internal(r, err)
		}
	}
	return nil
}

// pushEvents are the events of a manifest PUT: one per tag it set (a
// repeated push of a tag included: the receiver decides what is news),
// or one without a tag for a push by digest alone.
func pushEvents(name string, m storage.Manifest, tags []string) []notify.Event {
	base := notify.Event{Type: notify.Push, Repo: name, Digest: string(m.Digest), MediaType: m.MediaType, Size: int64(len(m.Content))}
	if len(tags) == 0 {
		return []notify.Event{base}
	}
	out := make([]notify.Event, 0, len(tags))
	for _, t := range tags {
		e := base
		e.Tag = t
		out = append(out, e)
	}
	return out
}
