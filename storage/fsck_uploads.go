package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"time"

	"github.com/google/uuid"
)

// ---------------------------------------------------------------- uploads

func (f *fsck) uploads(ctx context.Context, progress func(FsckProgress)) error {
	ids, err := f.list(ctx, uploadsRoot)
	if err != nil {
		return err
	}
	tick := newFsckTicker(progress, "uploads", len(ids))
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.upload(ctx, id); err != nil {
			return fmt.Errorf("upload %s: %w", id, err)
		}
		tick.update(i+1, 0, false)
	}
	tick.update(len(ids), 0, true)
	return nil
}

func (f *fsck) upload(ctx context.Context, id string) error {
	dir := uploadPath(id)
	if isDir, err := f.isDir(ctx, dir); err != nil {
		return err
	} else if !isDir || uuid.Validate(id) != nil {
		f.stray(ctx, dir, "not an upload session directory")
		return nil
	}
	f.report.Uploads++
	names, err := f.list(ctx, dir)
	if err != nil {
		return err
	}
	hasState, hasData := false, false
	for _, name := range names {
		p := path.Join(dir, name)
		switch {
		case name == "state":
			hasState = true
		case name == "data":
			hasData = true
		case isTempName(name):
			f.leftover(FsckLeftoverTemp, p, "temporary file of an interrupted write", f.remove(ctx, p))
		default:
			f.stray(ctx, p, "not part of an upload session")
		}
	}
	var dataSize int64
	if hasData {
		fi, err := f.s.driver.Stat(ctx, uploadDataPath(id))
		if err != nil {
			return err
		}
		dataSize = fi.Size()
	}
	if !hasState {
		if hasData {
			f.leftover(FsckLeftoverUpload, dir, "data without state: a monolithic upload cut short", f.remove(ctx, dir))
		} else {
			f.leftover(FsckLeftoverUpload, dir, "empty session directory", f.remove(ctx, dir))
		}
		return nil
	}
	b, err := f.s.driver.GetContent(ctx, uploadStatePath(id))
	if err != nil {
		return err
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil {
		f.problem(FsckUploadCorrupt, uploadStatePath(id), "state is not JSON: "+err.Error(), f.remove(ctx, dir))
		return nil
	}
	if _, err := restoreHash(&st); err != nil {
		f.problem(FsckUploadCorrupt, uploadStatePath(id), err.Error(), f.remove(ctx, dir))
		return nil
	}
	if st.Size < 0 || st.Repo == "" {
		f.problem(FsckUploadCorrupt, uploadStatePath(id), fmt.Sprintf("state names repository %q and size %d", st.Repo, st.Size), f.remove(ctx, dir))
		return nil
	}
	switch {
	case st.Size > 0 && !hasData:
		f.leftover(FsckLeftoverCommitted, dir, "the data was moved into the blob store by a finished upload", f.remove(ctx, dir))
	case dataSize < st.Size && st.Boot == "":
		// (Where chunks are not fsynced, a crash may take some: the
		// session goes back to what survived when next used; see
		// recoverUpload.)
		f.problem(FsckUploadCorrupt, uploadDataPath(id), fmt.Sprintf("%d bytes, the session acknowledged %d", dataSize, st.Size), f.remove(ctx, dir))
	case time.Since(st.UpdatedAt) > f.s.uploadExpiry:
		f.leftover(FsckLeftoverUploadIdle, dir, "idle since "+st.UpdatedAt.Format(time.RFC3339), f.remove(ctx, dir))
	}
	return nil
}
