package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"

	"kiln/buildhook"
	"kiln/cluster"
	"kiln/config"
	"kiln/metrics"
	"kiln/notify"
	"kiln/storage"
)

// newNotifier returns the webhooks of cfg (nil without endpoints), with
// what the outbox held from a previous run queued first; Run delivers. In
// a cluster (node not nil) the outbox is the cluster's database and each
// endpoint is delivered by one instance at a time.
func newNotifier(ctx context.Context, cfg *config.Config, store *storage.Store, node *clusterNode, m *metrics.Metrics, addr string, logger *slog.Logger) (*notify.Notifier, error) {
	if len(cfg.Notifications.Endpoints) == 0 {
		return nil, nil
	}
	var endpoints []notify.Endpoint
	var names []string
	for i, e := range cfg.Notifications.Endpoints {
		name := e.Name
		if name == "" {
			name = strconv.Itoa(i)
		}
		names = append(names, name)
		endpoints = append(endpoints, notify.Endpoint{Name: name, URL: e.URL, Headers: e.Headers, Events: e.Events, Format: e.Format,
			Secret: []byte(e.Secret), Timeout: e.Timeout, MinBackoff: e.MinBackoff, MaxBackoff: e.MaxBackoff})
		logger.Info("sending events to webhook", "endpoint", name, "format", e.Format, "events", e.Events)
	}
	var n *notify.Notifier
	record := m.Webhooks(names, func() int { return n.Pending() })
	opts := notify.Options{Source: eventSource(cfg, addr), Logger: logger, OnDelivery: record}
	var err error
	if node != nil {
		n, err = notify.NewShared(ctx, node.webhooks(), store, endpoints, opts)
	} else {
		n, err = notify.New(ctx, store, endpoints, opts)
	}
	if err != nil {
		return nil, err
	}
	if p := n.Pending(); p > 0 {
		logger.Info("webhook events waiting in the outbox", "pending", p)
	}
	return n, nil
}

// webhooks is how the webhooks share their outbox and delivery with the
// cluster: a follower tries to take an endpoint's delivery every
// heartbeat, which is also how often a leader polls for events it was not
// woken for.
func (n *clusterNode) webhooks() notify.Cluster {
	var holder string
	if n.member != nil {
		holder = n.member.ID()
	}
	return notify.Cluster{DB: n.db, Lead: cluster.LeadOptions{Interval: n.heartbeat, Holder: holder, Logger: n.logger}}
}

// eventSource names this kiln in its events: its first configured
// hostname (else its listening address) and an id for this process.
func eventSource(cfg *config.Config, addr string) notify.Source {
	host := addr
	if len(cfg.Registry.Hostnames) > 0 {
		host = cfg.Registry.Hostnames[0]
	}
	scheme := "http://"
	if cfg.HTTP.TLS.Certificate != "" {
		scheme = "https://"
	}
	id := make([]byte, 8)
	rand.Read(id)
	return notify.Source{URL: scheme + host, Addr: addr, InstanceID: hex.EncodeToString(id)}
}

// buildEvents turns a build's change of status into events: queued,
// started, and its end; a success also moved the rule's tags.
func buildEvents(n *notify.Notifier, logger *slog.Logger) func(buildhook.StatusChange) {
	if n == nil {
		return nil
	}
	return func(c buildhook.StatusChange) {
		r := c.Record
		base := notify.Event{Build: r.ID, Rule: r.Rule, Error: r.Error, Digest: string(r.Result)}
		events := []notify.Event{base}
		switch r.Status {
		case buildhook.StatusQueued:
			events[0].Type = notify.BuildQueued
		case buildhook.StatusRunning:
			events[0].Type = notify.BuildStarted
		case buildhook.StatusSucceeded:
			events[0].Type = notify.BuildSucceeded
			for _, t := range c.Tags {
				e := base
				e.Type, e.Repo, e.Tag = notify.TagMoved, t.Repo, t.Tag
				events = append(events, e)
			}
		case buildhook.StatusFailed:
			events[0].Type = notify.BuildFailed
		case buildhook.StatusUnchanged:
			events[0].Type = notify.BuildUnchanged
		default:
			return
		}
		for _, e := range events {
			if err := n.Publish(context.Background(), e); err != nil {
				logger.Warn("build event lost", "build", r.ID, "type", e.Type, "err", err)
			}
		}
	}
}
