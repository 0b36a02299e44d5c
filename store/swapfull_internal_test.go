package store

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestSwapFullKeepsChangesAppliedDuringLoad: a full load read client 1
// active before its revocation, which the change feed applied to the
// served snapshot while the load ran. Publishing the load must not serve
// the key again, even when re-reading the changed clients fails (here: the
// store's context is over). Client 2, deleted meanwhile, stays gone;
// client 3, untouched, comes from the load.
func TestSwapFullKeepsChangesAppliedDuringLoad(t *testing.T) {
	base := newClientSnap(3)
	for i := 1; i <= 3; i++ {
		base.put(clientEntry{client: snapClient(t, i, "active"), slot: &usageSlot{}})
	}
	base.seal()

	// What the feed made of base meanwhile: 1 revoked, 2 deleted.
	ed := base.edit()
	prev, _ := base.entry("id-1")
	ed.remove("id-1")
	ed.put(clientEntry{client: snapClient(t, 1, "revoked"), slot: prev.slot})
	ed.remove("id-2")
	cur := ed.next.seal()

	// The load's result: read before either change.
	load := base.edit()
	load.remove("id-3")
	load.put(clientEntry{client: snapClient(t, 3, "suspended"), slot: &usageSlot{}})

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the re-read of the changed clients fails
	pool, err := pgxpool.New(context.Background(), "postgres://127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := &Postgres{ctx: ctx, pool: pool, cfg: PostgresConfig{ConnectTimeout: time.Second}}
	s.clients.Store(cur)
	dirty := map[string]struct{}{"id-1": {}, "id-2": {}}
	if err := s.swapFull(fullLoad{clients: load}, dirty, false, false); err == nil {
		t.Fatal("swapFull: the re-read should have failed")
	}
	got := s.clients.Load()
	state := func(key string) string {
		switch c := got.client(key); {
		case c == nil:
			return "none"
		case c.Active:
			return "active"
		}
		return "inactive"
	}
	for key, want := range map[string]string{"key-1": "inactive", "key-2": "none", "key-3": "inactive"} {
		if st := state(key); st != want {
			t.Errorf("%s after the swap: %s, want %s", key, st, want)
		}
	}
}
