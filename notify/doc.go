// Package notify sends kiln's events (pushes, deletes, cache fills, builds)
// to webhooks from a durable outbox in the store, at least once and in order.
package notify
