package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"kiln/cluster"
)

// Cluster is what a Notifier needs to share its outbox and its delivery
// with the other instances of a cluster.
type Cluster struct {
	DB *cluster.DB
	// Lead configures each endpoint's leadership; its Interval also paces
	// the polling that backs up LISTEN/NOTIFY.
	Lead cluster.LeadOptions
}

// DefaultLeadInterval is Cluster.Lead.Interval when it is zero.
const DefaultLeadInterval = 10 * time.Second

// batchSize bounds the events a deliverer reads at a time.
const batchSize = 100

// pendingTimeout bounds Pending's count, which a metrics scrape waits on.
const pendingTimeout = 5 * time.Second

// NewShared returns a Notifier whose outbox is the cluster's database:
// any instance publishes, and each endpoint's events are delivered, in
// publish order, by one instance at a time (the leader of
// "webhook:"+name), from where the previous leader left off. Every
// instance must be configured with the same endpoints: an event is
// deleted once all of them have had it. What outbox (the store's, nil:
// none) still holds from a single-process run moves to the shared outbox.
func NewShared(ctx context.Context, c Cluster, outbox Outbox, endpoints []Endpoint, opts Options) (*Notifier, error) {
	n := prepare(endpoints, opts)
	if c.Lead.Interval <= 0 {
		c.Lead.Interval = DefaultLeadInterval
	}
	if c.Lead.Logger == nil {
		c.Lead.Logger = n.opts.Logger
	}
	n.shared, n.cluster = &sharedLog{pool: c.DB.Pool()}, c
	names := n.names()
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			return nil, fmt.Errorf("webhooks: two endpoints are named %q: each keeps its place in the shared outbox under its name", name)
		}
		seen[name] = true
	}
	if err := n.shared.ensureCursors(ctx, names); err != nil {
		return nil, fmt.Errorf("webhooks: the shared outbox: %w", err)
	}
	if outbox != nil {
		moved, err := n.importOutbox(ctx, outbox)
		if err != nil {
			return nil, err
		}
		if moved > 0 {
			n.opts.Logger.Info("webhook events moved from the store's outbox to the cluster's", slog.Int("events", moved))
		}
	}
	return n, nil
}

func (n *Notifier) names() []string {
	var names []string
	for _, q := range n.endpoints {
		names = append(names, q.Name)
	}
	return names
}

// publishShared appends the event to the shared outbox and wakes this
// instance's deliverers (the others hear of it by NOTIFY).
func (n *Notifier) publishShared(ctx context.Context, typ string, content []byte) error {
	if _, err := n.shared.append(ctx, content); err != nil {
		return fmt.Errorf("writing the event to the shared outbox: %w", err)
	}
	for _, q := range n.endpoints {
		if q.wants(typ) {
			q.poke()
		}
	}
	return nil
}

func (n *Notifier) pendingShared() int {
	ctx, cancel := context.WithTimeout(context.Background(), pendingTimeout)
	defer cancel()
	count, err := n.shared.count(ctx)
	if err != nil {
		n.opts.Logger.Warn("counting the shared outbox's events", slog.Any("error", err))
	}
	return count
}

// runShared delivers, until ctx ends, to each endpoint this instance
// leads, listening for new events meanwhile.
func (n *Notifier) runShared(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { n.listen(ctx) })
	for _, q := range n.endpoints {
		wg.Go(func() {
			n.cluster.DB.Lead(ctx, "webhook:"+q.Name, n.cluster.Lead, func(ctx context.Context) { n.follow(ctx, q) })
		})
	}
	wg.Wait()
}

// follow delivers q's events from its cursor on, advancing the cursor
// after each, until ctx ends; when caught up it waits for a wake-up or the
// next poll.
func (n *Notifier) follow(ctx context.Context, q *queue) {
	poll := time.NewTicker(n.cluster.Lead.Interval)
	defer poll.Stop()
	for {
		caughtUp, err := n.catchUp(ctx, q)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			n.opts.Logger.Warn("webhook: reading the shared outbox", slog.String("endpoint", q.Name), slog.Any("error", err))
		}
		if caughtUp || err != nil {
			select {
			case <-q.wake:
			case <-poll.C:
			case <-ctx.Done():
				return
			}
		}
	}
}

// catchUp delivers one batch of q's events after its cursor; caughtUp when
// there were none, and then the events every endpoint has had are deleted.
func (n *Notifier) catchUp(ctx context.Context, q *queue) (caughtUp bool, err error) {
	cursor, err := n.shared.cursor(ctx, q.Name)
	if err != nil {
		return false, err
	}
	events, err := n.shared.after(ctx, cursor, batchSize)
	if err != nil {
		return false, err
	}
	if len(events) == 0 {
		return true, n.shared.prune(ctx, n.names())
	}
	for _, se := range events {
		e := new(Event)
		if err := json.Unmarshal(se.content, e); err != nil {
			n.opts.Logger.Warn("skipping an unreadable event in the shared outbox", slog.Int64("id", se.id), slog.Any("error", err))
		} else if e.ID = strconv.FormatInt(se.id, 10); q.wants(e.Type) && !n.send(ctx, q, e) {
			return false, nil
		}
		if err := n.shared.advance(ctx, q.Name, se.id); err != nil {
			// Sent again by the next attempt: a duplicate, never a loss.
			return false, err
		}
	}
	return false, nil
}

// listen wakes every deliverer at each NOTIFY of a publish, on a
// connection of its own, until ctx ends; on a lost connection it listens
// again an interval later (the deliverers poll meanwhile).
func (n *Notifier) listen(ctx context.Context) {
	for {
		err := n.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		n.opts.Logger.Warn("webhook: listening for events", slog.Any("error", err))
		t := time.NewTimer(n.cluster.Lead.Interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

func (n *Notifier) listenOnce(ctx context.Context) error {
	pc, err := n.cluster.DB.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	// Listening holds the connection for good: take it out of the pool.
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), pendingTimeout)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+eventsChannel); err != nil {
		return err
	}
	// What was published before LISTEN took effect.
	n.pokeAll()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		n.pokeAll()
	}
}

func (n *Notifier) pokeAll() {
	for _, q := range n.endpoints {
		q.poke()
	}
}

// poke wakes q's deliverer, if it is not awake already.
func (q *queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
