package storage

import (
	"fmt"
	"time"
)

// FsckIssue is one thing Fsck found.
type FsckIssue struct {
	Kind   string // one of the Fsck* kinds
	Path   string // the store path it is about
	Detail string
	Action string // what Repair did about it; "" when nothing was done
}

func (i FsckIssue) String() string {
	s := fmt.Sprintf("%s %s: %s", i.Kind, i.Path, i.Detail)
	if i.Action != "" {
		s += " [" + i.Action + "]"
	}
	return s
}

// FsckProgress tells how far a Fsck is; Total is 0 while unknown.
type FsckProgress struct {
	Phase string // "blobs", "repositories", "uploads"
	Done  int
	Total int
	Bytes int64 // bytes re-hashed so far (phase "blobs")
}

// FsckReport is what Fsck found and did.
type FsckReport struct {
	Blobs        int   // blobs re-hashed
	BlobBytes    int64 // their total size
	Repositories int
	LayerLinks   int
	Manifests    int
	Tags         int
	Referrers    int
	Uploads      int         // upload session directories
	Problems     []FsckIssue // what is wrong
	Leftovers    []FsckIssue // harmless remains of interrupted writes
}

// Remaining returns the problems Repair did not fix (all of them without
// Repair).
func (r *FsckReport) Remaining() int {
	n := 0
	for _, p := range r.Problems {
		if p.Action == "" {
			n++
		}
	}
	return n
}

// fsckTicker rate-limits progress reports.
type fsckTicker struct {
	f     func(FsckProgress)
	phase string
	total int
	last  time.Time
}

func newFsckTicker(f func(FsckProgress), phase string, total int) *fsckTicker {
	f(FsckProgress{Phase: phase, Total: total})
	return &fsckTicker{f: f, phase: phase, total: total, last: time.Now()}
}

func (t *fsckTicker) update(done int, bytes int64, final bool) {
	if !final && time.Since(t.last) < 250*time.Millisecond {
		return
	}
	t.last = time.Now()
	t.f(FsckProgress{Phase: t.phase, Done: done, Total: t.total, Bytes: bytes})
}

func (f *fsck) problem(kind, p, detail string, repair func() (string, error)) {
	f.add(&f.report.Problems, kind, p, detail, repair)
}

func (f *fsck) leftover(kind, p, detail string, repair func() (string, error)) {
	f.add(&f.report.Leftovers, kind, p, detail, repair)
}

func (f *fsck) add(list *[]FsckIssue, kind, p, detail string, repair func() (string, error)) {
	is := FsckIssue{Kind: kind, Path: p, Detail: detail}
	if f.opts.Repair && repair != nil {
		action, err := repair()
		if err != nil {
			is.Detail += "; repair failed: " + err.Error()
		} else {
			is.Action = action
		}
	}
	*list = append(*list, is)
}

func fsckTruncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
