package buildhook

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"kiln/registry"
	"kiln/storage"
)

// The finding: in a cluster, an image adopted on one instance was
// unknown to the others until they restarted, so a push of its base to
// another instance rebuilt nothing. An adoption now reaches every
// instance.
func TestSharedAdoptionsReachEveryInstance(t *testing.T) {
	t.Parallel()
	pool := newDatabase(t)
	dir := t.TempDir()
	type instance struct {
		svc  *Service
		host string
	}
	var hosts []string
	var moves []*TagMoves
	var stores []*storage.Store
	for range 2 {
		m := new(TagMoves)
		store, err := storage.NewFilesystem(dir, storage.Options{OnTagMoved: m.TagMoved})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(registry.New(store, registry.Options{}))
		t.Cleanup(srv.Close)
		hosts, moves, stores = append(hosts, strings.TrimPrefix(srv.URL, "http://")), append(moves, m), append(stores, store)
	}
	// A single kiln's adoption, in the store: the cluster's first start
	// moves it to the database.
	legacy := []byte(`{"image":"legacy:v1","base":"other:1","adopted":"2026-12-01T00:00:00Z"}`)
	if err := stores[0].PutAdoption(context.Background(), "legacy", "v1", legacy); err != nil {
		t.Fatal(err)
	}
	var in []instance
	for i, name := range []string{"a", "b"} {
		svc, _ := startService(t, ServiceOptions{Store: stores[i], TagMoves: moves[i], Registry: hosts[i], Hosts: hosts, AutoRebase: true,
			Shared: &SharedOptions{Pool: pool, Instance: name, Renew: 50 * time.Millisecond, Lease: time.Second}})
		in = append(in, instance{svc: svc, host: hosts[i]})
	}
	a := &autoKiln{svc: in[0].svc, host: in[0].host}
	b := &autoKiln{svc: in[1].svc, host: in[1].host}
	base1 := atRandomImage(t, 2)
	a.push(t, "base:1", base1)
	a.push(t, "app:v1", atDerived(t, base1, a.host+"/base:1"))
	a.waitIdle(t)
	if got := a.svc.Adopted(); len(got) != 2 {
		t.Fatalf("a adopted %+v, want legacy:v1 and app:v1", got)
	}
	if left, err := stores[0].Adoptions(context.Background()); err != nil || len(left) != 0 {
		t.Errorf("adoptions left in the store: %v, %v", left, err)
	}
	var inDB []string
	rows, err := pool.Query(context.Background(), "SELECT repo || ':' || tag FROM adoptions ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	if inDB, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || strings.Join(inDB, " ") != "app:v1 legacy:v1" {
		t.Errorf("adoptions in the database: %v, %v", inDB, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(b.svc.Adopted()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("b never learnt of the image a adopted")
		}
		time.Sleep(10 * time.Millisecond) // polls a condition; the deadline only fails the test
	}

	b.push(t, "base:1", atRandomImage(t, 2)) // the base moves on the other instance
	b.waitIdle(t)
	a.waitIdle(t)
	recs := b.records(t)
	if len(recs) != 1 || recs[0].Status != StatusSucceeded || recs[0].TriggerRef != "base:1" {
		for _, r := range recs {
			t.Logf("record %s %s %s %q", r.ID, r.Rule, r.Status, r.Error)
		}
		t.Fatalf("%d builds after the base moved on b, want app:v1 rebased once", len(recs))
	}
}
