package buildhook

import (
	"context"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook/build"
)

// jobQueue is what the service needs of a build queue: Queue in one
// process, SharedQueue across the instances of a cluster.
type jobQueue interface {
	TagMoved(ref build.ImageRef, d digest.Digest)
	Trigger(rule string, t build.Trigger) (*build.Job, error)
	Graph() *Graph
	SetGraph(g *Graph)
	Start(ctx context.Context)
	Wait()
	Idle() <-chan struct{}
	WaitIdle(ctx context.Context) error
	Counts() (queued, running int)
}

var (
	_ jobQueue = (*Queue)(nil)
	_ jobQueue = (*SharedQueue)(nil)
)
