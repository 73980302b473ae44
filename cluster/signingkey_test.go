package cluster

import (
	"bytes"
	"context"
	"sync"
	"testing"
)

// Instances asking at once all get the one key; another name is another key.
func TestSigningKeyShared(t *testing.T) {
	dsn := newDatabase(t)
	const asks = 5
	keys := make([][]byte, asks)
	errs := make([]error, asks)
	var wg sync.WaitGroup
	for i := range asks {
		db := open(t, dsn)
		wg.Go(func() { keys[i], errs[i] = db.SigningKey(context.Background(), "tokens") })
	}
	wg.Wait()
	for i := range asks {
		if errs[i] != nil {
			t.Fatalf("ask %d: %v", i, errs[i])
		}
		if len(keys[i]) != 32 || !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("ask %d got %x, ask 0 got %x: want one 32-byte key", i, keys[i], keys[0])
		}
	}
	other, err := open(t, dsn).SigningKey(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, keys[0]) {
		t.Error("two names share a key")
	}
}
