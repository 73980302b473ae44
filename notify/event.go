package notify

import "time"

// The event types; a filter names them.
const (
	Push           = "push"
	Delete         = "delete"
	CacheFill      = "cache.fill"
	BuildQueued    = "build.queued"
	BuildStarted   = "build.started"
	BuildSucceeded = "build.succeeded"
	BuildFailed    = "build.failed"
	BuildUnchanged = "build.unchanged"
	TagMoved       = "tag.moved"
)

// Types lists every event type, for validating filters.
var Types = []string{Push, Delete, CacheFill, BuildQueued, BuildStarted, BuildSucceeded, BuildFailed, BuildUnchanged, TagMoved}

// Event is what happened. ID is set when it enters the outbox and stays
// the same on every delivery, so receivers can drop duplicates.
type Event struct {
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`

	Repo      string `json:"repository,omitempty"`
	Tag       string `json:"tag,omitempty"`
	Digest    string `json:"digest,omitempty"`
	From      string `json:"from,omitempty"` // the tag's previous digest (tag.moved)
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size,omitempty"`

	Build string `json:"build,omitempty"` // build id
	Rule  string `json:"rule,omitempty"`
	Error string `json:"error,omitempty"`

	Actor    string `json:"actor,omitempty"` // the authenticated user, if any
	Addr     string `json:"addr,omitempty"`  // the client's address
	Method   string `json:"method,omitempty"`
	Agent    string `json:"userAgent,omitempty"`
	Request  string `json:"requestID,omitempty"`
	Upstream string `json:"upstream,omitempty"` // where a cache fill came from
}

// key is what delivery keeps in order: events of one repository (or, for
// builds without one, of one rule).
func (e *Event) key() string {
	if e.Repo != "" {
		return e.Repo
	}
	return "rule:" + e.Rule
}
