//go:build !race

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/scopegate/scopegate/store"
)

// TestPostgresHotPathNoAllocs: a cached user lookup, a client lookup and a
// use mark do not allocate.
func TestPostgresHotPathNoAllocs(t *testing.T) {
	b := setup(t, func(c *store.PostgresConfig) { c.CacheTTL = time.Hour })
	ctx := context.Background()
	now := time.Now()
	if u, err := b.store.LookupUser(ctx, "alice", now); u == nil || err != nil {
		t.Fatalf("LookupUser = %v, %v", u, err)
	}
	c, _ := b.store.LookupClient("app", now)
	if c == nil {
		t.Fatal("client app missing")
	}
	tests := []struct {
		name string
		f    func()
	}{
		{"LookupUser cached", func() { _, _ = b.store.LookupUser(ctx, "alice", now) }},
		{"LookupUser negative", func() { _, _ = b.store.LookupUser(ctx, "nobody", now) }},
		{"LookupClient", func() { _, _ = b.store.LookupClient("app", now) }},
		{"LookupClient unknown", func() { _, _ = b.store.LookupClient("nope", now) }},
		{"MarkUsed", func() { b.store.MarkUsed(c.ID, now) }},
	}
	_, _ = b.store.LookupUser(ctx, "nobody", now) // warm the negative entry
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tt.name, n)
		}
	}
}
