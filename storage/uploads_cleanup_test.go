package storage

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// Cancelled, expired and failed uploads leave no multipart upload behind
// on S3: its parts would be invisible to listings and kept forever.
func TestS3AbandonedUploadsLeaveNoParts(t *testing.T) {
	t.Parallel()
	serialS3(t)
	ctx := t.Context()
	chunk := randomBytes(6<<20+5, 7) // more than one 5 MiB part

	t.Run("cancel", func(t *testing.T) {
		s := newS3Store(t, Options{})
		u, err := s.NewUpload(ctx, "abandon")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendUpload(ctx, "abandon", u.ID, 0, bytes.NewReader(chunk)); err != nil {
			t.Fatal(err)
		}
		if !s.files.abortWrite(ctx, uploadDataPath(u.ID)) {
			t.Fatal("no multipart upload after a PATCH: the check below would prove nothing")
		}
		// The check cancelled it; make it again.
		u, err = s.NewUpload(ctx, "abandon")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendUpload(ctx, "abandon", u.ID, 0, bytes.NewReader(chunk)); err != nil {
			t.Fatal(err)
		}
		if err := s.CancelUpload(ctx, "abandon", u.ID); err != nil {
			t.Fatal(err)
		}
		if s.files.abortWrite(ctx, uploadDataPath(u.ID)) {
			t.Error("cancelled upload left its multipart upload behind")
		}
	})

	t.Run("expired", func(t *testing.T) {
		s := newS3Store(t, Options{})
		u, err := s.NewUpload(ctx, "abandon")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendUpload(ctx, "abandon", u.ID, 0, bytes.NewReader(chunk)); err != nil {
			t.Fatal(err)
		}
		// Idle for an hour, as the session's state tells.
		st, err := s.loadUploadState(ctx, "abandon", u.ID)
		if err != nil {
			t.Fatal(err)
		}
		st.UpdatedAt = time.Now().Add(-time.Hour)
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.driver.PutContent(ctx, uploadStatePath(u.ID), b); err != nil {
			t.Fatal(err)
		}
		purger := New(s.driver, Options{UploadExpiry: time.Minute})
		n, err := purger.PurgeUploads(ctx)
		if err != nil || n != 1 {
			t.Fatalf("PurgeUploads = %d, %v; want 1", n, err)
		}
		if s.files.abortWrite(ctx, uploadDataPath(u.ID)) {
			t.Error("purged upload left its multipart upload behind")
		}
	})
}
