package ui

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"kiln/buildhook"
	"kiln/storage"
)

// Catalog is what the pages read of the store; *storage.Store is one.
type Catalog interface {
	Repositories(ctx context.Context) ([]string, error)
	Tags(ctx context.Context, repo string) ([]string, error)
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	GetManifest(ctx context.Context, repo string, d digest.Digest) (*storage.Manifest, error)
	OpenBlob(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, error)
}

// Builds is what the pages read of the build service; ServiceBuilds
// adapts a *buildhook.Service.
type Builds interface {
	// Find returns the records q selects, newest first, and whether more
	// follow (see buildhook.Records.Find).
	Find(ctx context.Context, q buildhook.Query) ([]*buildhook.Record, bool, error)
	Get(ctx context.Context, id string) (*buildhook.Record, error)
	// Rules are the configured rules, then adopted images' rules.
	Rules() []Rule
}

// Rule is a build rule as the pages show it.
type Rule struct {
	Name    string
	Bases   []string // repo:tag
	Tags    []string // repo:tag
	Builder string
	Auto    bool // an image adopted by autorebase
}

// Usage returns the blobs the store holds, their bytes and when they were
// counted; (*metrics.Metrics).StoredUsage is one, sharing its scans.
type Usage func() (blobs int, bytes int64, counted time.Time, err error)
