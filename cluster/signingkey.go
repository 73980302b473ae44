package cluster

import (
	"context"
	"crypto/rand"
	"fmt"
)

// SigningKey returns the 32-byte key called name that every instance
// shares, made by whichever instance asks first: of several racing, one
// insert wins and all read its key.
func (db *DB) SigningKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	rand.Read(fresh)
	if _, err := db.pool.Exec(ctx, "INSERT INTO signing_keys (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, fresh); err != nil {
		return nil, fmt.Errorf("cluster: signing key %s: %w", name, err)
	}
	var key []byte
	if err := db.pool.QueryRow(ctx, "SELECT key FROM signing_keys WHERE name = $1", name).Scan(&key); err != nil {
		return nil, fmt.Errorf("cluster: signing key %s: %w", name, err)
	}
	return key, nil
}
