package testbed

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestStartS3 starts the server, which must have the bucket, and stops it,
// after which nothing answers on its port.
func TestStartS3(t *testing.T) {
	needTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	s, err := StartS3(ctx, t.TempDir(), "testbed")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := createBucket(ctx, s); err != nil { // already there: fine
		t.Errorf("bucket again: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	if resp, err := client.Get(s.Endpoint + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("%s still answers after Stop: %s", s.Endpoint, resp.Status)
	}
}
