package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"kiln/storage"
)

// Outbox is where events wait until every endpoint that wants them has
// them: the store (storage.Store).
type Outbox interface {
	AppendEvent(ctx context.Context, content []byte) (string, error)
	Events(ctx context.Context) ([]storage.StoredEvent, error)
	DeleteEvent(ctx context.Context, id string) error
}

// Options tune a Notifier.
type Options struct {
	Source Source
	// Client sends the requests; nil: a client of its own.
	Client *http.Client
	// Now stamps events; nil: time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// OnDelivery, when set, hears of every attempt: the endpoint's name
	// and whether it got a 2xx.
	OnDelivery func(endpoint string, ok bool)
}

// Notifier writes events to the outbox and delivers them.
type Notifier struct {
	outbox    Outbox
	endpoints []*queue
	opts      Options
	// shared, when set, is the cluster's outbox: events go there instead
	// of outbox and the queues, and Run delivers from it (shared.go).
	shared  *sharedLog
	cluster Cluster

	// publish keeps the outbox's order and the queues' order the same.
	publish   sync.Mutex
	mu        sync.Mutex
	remaining map[string]int // event id -> endpoints that still want it
}

// queue is one endpoint's events, oldest first.
type queue struct {
	Endpoint
	mu     sync.Mutex
	events []*Event
	wake   chan struct{}
}

// New returns a Notifier for endpoints, with what the outbox already holds
// (a previous run's undelivered events) queued first.
func New(ctx context.Context, outbox Outbox, endpoints []Endpoint, opts Options) (*Notifier, error) {
	n := prepare(endpoints, opts)
	n.outbox = outbox
	stored, err := outbox.Events(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the event outbox: %w", err)
	}
	for _, se := range stored {
		e := new(Event)
		if err := json.Unmarshal(se.Content, e); err != nil {
			n.opts.Logger.Warn("dropping an unreadable event from the outbox", slog.String("id", se.ID), slog.Any("error", err))
			e = nil
		} else {
			e.ID = se.ID
		}
		if e == nil || !n.enqueue(e) {
			// Nobody wants it (any more): the configuration changed.
			if err := outbox.DeleteEvent(ctx, se.ID); err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

// prepare returns a Notifier for endpoints, with opts' defaults filled in
// and an empty queue for each.
func prepare(endpoints []Endpoint, opts Options) *Notifier {
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	n := &Notifier{opts: opts, remaining: map[string]int{}}
	for i, ep := range endpoints {
		ep.applyDefaults()
		if ep.Name == "" {
			ep.Name = strconv.Itoa(i)
		}
		n.endpoints = append(n.endpoints, &queue{Endpoint: ep, wake: make(chan struct{}, 1)})
	}
	return n
}

// Publish writes e to the outbox, durably, and queues it for delivery. It
// returns once the event is safe: call it before answering the action.
func (n *Notifier) Publish(ctx context.Context, e Event) error {
	if n == nil || !n.wanted(e.Type) {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = n.opts.Now()
	}
	e.ID = ""
	content, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	if n.shared != nil {
		return n.publishShared(ctx, e.Type, content)
	}
	n.publish.Lock()
	defer n.publish.Unlock()
	id, err := n.outbox.AppendEvent(ctx, content)
	if err != nil {
		return fmt.Errorf("writing the event to the outbox: %w", err)
	}
	e.ID = id
	n.enqueue(&e)
	return nil
}

func (n *Notifier) wanted(typ string) bool {
	for _, q := range n.endpoints {
		if q.wants(typ) {
			return true
		}
	}
	return false
}

// enqueue hands e to every endpoint that wants it; false if none does.
func (n *Notifier) enqueue(e *Event) bool {
	count := 0
	for _, q := range n.endpoints {
		if !q.wants(e.Type) {
			continue
		}
		count++
	}
	if count == 0 {
		return false
	}
	n.mu.Lock()
	n.remaining[e.ID] = count
	n.mu.Unlock()
	for _, q := range n.endpoints {
		if q.wants(e.Type) {
			q.mu.Lock()
			q.events = append(q.events, e)
			q.mu.Unlock()
			select {
			case q.wake <- struct{}{}:
			default:
			}
		}
	}
	return true
}

// Pending is how many events wait for at least one endpoint (in a
// cluster: how many the shared outbox holds).
func (n *Notifier) Pending() int {
	if n == nil {
		return 0
	}
	if n.shared != nil {
		return n.pendingShared()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.remaining)
}

// Run delivers until ctx ends: one loop per endpoint, each sending its
// events one at a time in the order they happened, retrying the oldest
// until it gets a 2xx (so a repository's events arrive in order).
func (n *Notifier) Run(ctx context.Context) {
	if n == nil {
		return
	}
	if n.shared != nil {
		n.runShared(ctx)
		return
	}
	var wg sync.WaitGroup
	for _, q := range n.endpoints {
		wg.Go(func() { n.loop(ctx, q) })
	}
	wg.Wait()
}

func (n *Notifier) loop(ctx context.Context, q *queue) {
	for {
		q.mu.Lock()
		var e *Event
		if len(q.events) > 0 {
			e = q.events[0]
		}
		q.mu.Unlock()
		if e == nil {
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if !n.send(ctx, q, e) {
			return
		}
		q.mu.Lock()
		q.events = q.events[1:]
		q.mu.Unlock()
		n.delivered(ctx, e.ID)
	}
}

// send delivers e to q, retrying with backoff until it gets a 2xx (or
// q's format skips e); false if ctx ended first.
func (n *Notifier) send(ctx context.Context, q *queue, e *Event) bool {
	for attempt := 0; ; attempt++ {
		sent, err := n.deliver(ctx, q, e)
		if ctx.Err() != nil {
			return false
		}
		if sent && n.opts.OnDelivery != nil {
			n.opts.OnDelivery(q.Name, err == nil)
		}
		if err == nil {
			return true
		}
		wait := q.backoff(attempt)
		n.opts.Logger.Warn("webhook delivery failed", slog.String("endpoint", q.Name), slog.String("event", e.ID), slog.Int("attempt", attempt+1), slog.Duration("retry_in", wait), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// delivered notes that one endpoint has event id; the last one takes it
// out of the outbox.
func (n *Notifier) delivered(ctx context.Context, id string) {
	n.mu.Lock()
	n.remaining[id]--
	last := n.remaining[id] <= 0
	if last {
		delete(n.remaining, id)
	}
	n.mu.Unlock()
	if !last {
		return
	}
	if err := n.outbox.DeleteEvent(ctx, id); err != nil && ctx.Err() == nil {
		// It is sent again after a restart: a duplicate, never a loss.
		n.opts.Logger.Warn("removing a delivered event from the outbox", slog.String("event", id), slog.Any("error", err))
	}
}

// deliver sends e to q once; nil on a 2xx. sent is false, and err nil,
// for an event q's format cannot say: it is skipped.
func (n *Notifier) deliver(ctx context.Context, q *queue, e *Event) (sent bool, err error) {
	body, contentType, ok, err := encode(q.Format, e, n.opts.Source)
	if err != nil || !ok {
		return false, err
	}
	return true, n.post(ctx, q, e, body, contentType)
}

// post sends body to q.
func (n *Notifier) post(ctx context.Context, q *queue, e *Event, body []byte, contentType string) error {
	ctx, cancel := context.WithTimeout(ctx, q.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range q.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Kiln-Event-Id", e.ID)
	req.Header.Set("X-Kiln-Event-Type", e.Type)
	if len(q.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(q.Secret, body))
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
