package storage

import (
	"context"
	"fmt"
	"path"
)

// remove is a repair that deletes p.
func (f *fsck) remove(ctx context.Context, p string) func() (string, error) {
	return func() (string, error) {
		if err := f.s.deleteContent(ctx, p); err != nil && !isNotFound(err) {
			return "", err
		}
		return "removed", nil
	}
}

// quarantine is a repair that moves p under /quarantine/rel, without
// replacing what an earlier run put there.
func (f *fsck) quarantine(ctx context.Context, p, rel string) func() (string, error) {
	return func() (string, error) {
		base := path.Join(quarantineRoot, rel)
		dst := base
		for n := 1; ; n++ {
			ok, err := f.s.exists(ctx, dst)
			if err != nil {
				return "", err
			}
			if !ok {
				break
			}
			dst = fmt.Sprintf("%s.%d", base, n)
		}
		if err := f.s.files.moveOut(ctx, p, dst); err != nil {
			return "", err
		}
		return "quarantined to " + dst, nil
	}
}

func (f *fsck) stray(ctx context.Context, p, detail string) {
	f.problem(FsckStray, p, detail, f.quarantine(ctx, p, path.Join("stray", p)))
}
