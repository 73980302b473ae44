package notify

import (
	"encoding/json"
	"net/url"
	"time"
)

// The formats an endpoint may ask for.
const (
	CloudEvents  = "cloudevents"
	Distribution = "distribution"
)

// Content types of the two formats.
const (
	cloudEventsType  = "application/cloudevents+json"
	distributionType = "application/vnd.docker.distribution.events.v1+json"
)

// Source names this kiln in the events: its URL and an instance id.
type Source struct {
	URL        string // e.g. https://registry.example.com
	Addr       string // host:port it listens on
	InstanceID string
}

// encode returns the body and content type of e in format, or ok false
// when the format has no way to say e (distribution knows only pushes,
// pulls and deletes): such an event counts as delivered.
func encode(format string, e *Event, src Source) (body []byte, contentType string, ok bool, err error) {
	switch format {
	case Distribution:
		env, ok := distributionEnvelope(e, src)
		if !ok {
			return nil, "", false, nil
		}
		body, err = json.Marshal(env)
		return body, distributionType, true, err
	default:
		body, err = json.Marshal(cloudEvent(e, src))
		return body, cloudEventsType, true, err
	}
}

// cloudEvent is e as a CloudEvents 1.0 structured-mode JSON event.
func cloudEvent(e *Event, src Source) map[string]any {
	subject := e.Repo
	if e.Tag != "" {
		subject += ":" + e.Tag
	} else if e.Digest != "" {
		subject += "@" + e.Digest
	}
	ce := map[string]any{
		"specversion":     "1.0",
		"id":              e.ID,
		"source":          sourceURI(src),
		"type":            "dev.kiln." + e.Type,
		"time":            e.Time.UTC().Format(time.RFC3339Nano),
		"datacontenttype": "application/json",
		"data":            e,
	}
	if subject != "" {
		ce["subject"] = subject
	}
	return ce
}

func sourceURI(src Source) string {
	if src.URL != "" {
		return src.URL
	}
	return "kiln://" + src.Addr
}

// distributionEnvelope is e in distribution's notification envelope, so
// consumers of distribution's webhooks (Keel and others) work unchanged.
func distributionEnvelope(e *Event, src Source) (map[string]any, bool) {
	var action string
	switch e.Type {
	case Push:
		action = "push"
	case Delete:
		action = "delete"
	default:
		return nil, false
	}
	target := map[string]any{"repository": e.Repo}
	if e.MediaType != "" {
		target["mediaType"] = e.MediaType
	}
	if e.Digest != "" {
		target["digest"] = e.Digest
		if e.Size > 0 {
			target["size"] = e.Size
			target["length"] = e.Size
		}
		if src.URL != "" {
			target["url"] = src.URL + "/v2/" + e.Repo + "/manifests/" + url.PathEscape(e.Digest)
		}
	}
	if e.Tag != "" {
		target["tag"] = e.Tag
	}
	event := map[string]any{
		"id":        e.ID,
		"timestamp": e.Time.UTC().Format(time.RFC3339Nano),
		"action":    action,
		"target":    target,
		"request":   map[string]any{"id": e.Request, "addr": e.Addr, "host": hostOf(src.URL), "method": e.Method, "useragent": e.Agent},
		"actor":     map[string]any{"name": e.Actor},
		"source":    map[string]any{"addr": src.Addr, "instanceID": src.InstanceID},
	}
	return map[string]any{"events": []any{event}}, true
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}
