package buildhook

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"kiln/storage"
)

// adoptionStore keeps autorebase's adoptions: the store, or in a cluster
// the database (sharedAdoptions).
type adoptionStore interface {
	Adoptions(ctx context.Context) ([]storage.StoredAdoption, error)
	PutAdoption(ctx context.Context, repo, tag string, content []byte) error
	DeleteAdoption(ctx context.Context, repo, tag string) error
}

// sharedAdoptions keeps adoptions in the adoptions table of a cluster's
// database; the first start in a cluster moves the store's there.
type sharedAdoptions struct {
	pool  *pgxpool.Pool
	store *storage.Store
}

func (s sharedAdoptions) Adoptions(ctx context.Context) ([]storage.StoredAdoption, error) {
	rows, err := s.pool.Query(ctx, "SELECT repo, tag, content FROM adoptions ORDER BY repo, tag")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.StoredAdoption, error) {
		var a storage.StoredAdoption
		err := r.Scan(&a.Repo, &a.Tag, &a.Content)
		return a, err
	})
}

func (s sharedAdoptions) PutAdoption(ctx context.Context, repo, tag string, content []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO adoptions (repo, tag, content) VALUES ($1, $2, $3)
		ON CONFLICT (repo, tag) DO UPDATE SET content = EXCLUDED.content`, repo, tag, string(content))
	return err
}

func (s sharedAdoptions) DeleteAdoption(ctx context.Context, repo, tag string) error {
	_, err := s.pool.Exec(ctx, "DELETE FROM adoptions WHERE repo = $1 AND tag = $2", repo, tag)
	return err
}

// importFromStore moves the adoptions a single kiln kept in the store
// into the database (those the database has already win), then removes
// them from the store.
func (s sharedAdoptions) importFromStore(ctx context.Context) error {
	stored, err := s.store.Adoptions(ctx)
	if err != nil || len(stored) == 0 {
		return err
	}
	for _, a := range stored {
		if a.Repo == "" {
			continue // a file the layout does not name: load warns of it
		}
		if _, err := s.pool.Exec(ctx, `INSERT INTO adoptions (repo, tag, content) VALUES ($1, $2, $3)
			ON CONFLICT (repo, tag) DO NOTHING`, a.Repo, a.Tag, string(a.Content)); err != nil {
			return err
		}
	}
	for _, a := range stored {
		if a.Repo != "" {
			if err := s.store.DeleteAdoption(ctx, a.Repo, a.Tag); err != nil {
				return err
			}
		}
	}
	return nil
}
