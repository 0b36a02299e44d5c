//go:build !race

package store_test

import (
	"context"
	"testing"
	"time"
)

// TestPostgresHotPathNoAllocs: a cached user lookup, a client lookup and a
// use mark do not allocate.
func TestPostgresHotPathNoAllocs(t *testing.T) {
	b := openWarmStore(t)
	ctx := context.Background()
	now := time.Now()
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
