// Package notify sends kiln's events (pushes, deletes, cache fills, builds)
// to webhooks from a durable outbox, at least once and in order: the
// store's (New), or in a cluster the database's, shared by the instances
// (NewShared).
package notify
