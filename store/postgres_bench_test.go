package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/gcload"
	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/store"
)

// seedSQL is the statement that inserts n clients with a few list entries
// each, like a large member database. n is in the text, not a parameter,
// so that seedScale can run it among other statements.
func seedSQL(n int) string {
	return `INSERT INTO api_clients (client_key, name, status, api_key_hash, allowed_origins, allowed_ips, allowed_paths, rate_limit_per_min)
SELECT 'client-' || i, 'Client ' || i, 'active',
       'sha256:' || encode(sha256(('secret-' || i)::bytea), 'hex'),
       '["https://app.example.com", "https://*.example.org"]',
       '["10.0.0.0/8", "192.168.1.10"]',
       '["GET /api/**", "POST /api/orders/*"]',
       CASE WHEN i % 2 = 0 THEN 600 END
FROM generate_series(1, ` + strconv.Itoa(n) + `) AS i`
}

// seedClients inserts n clients (seedSQL) into a new database.
func seedClients(b *testing.B, n int) string {
	b.Helper()
	db, dsn := pgtest.NewPool(b)
	pgtest.Exec(b, db, seedSQL(n))
	return dsn
}

// BenchmarkPostgresSnapshotLoad loads 100,000 clients: cold (OpenPostgres:
// connect, LISTEN, load and compile everything) and reload (the periodic
// full reload, which keeps unchanged compiled clients). MB-retained is the
// heap the loaded store holds.
func BenchmarkPostgresSnapshotLoad(b *testing.B) {
	const n = 100000
	dsn := seedClients(b, n)
	ctx := context.Background()
	cfg := store.PostgresConfig{DSN: dsn, ConnectTimeout: time.Minute, FlushInterval: time.Hour}

	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		var retained uint64
		for b.Loop() {
			before := testproc.LiveHeap()
			restore := gcload.Raise() // as serve does
			s, err := store.OpenPostgres(ctx, cfg)
			restore()
			if err != nil {
				b.Fatal(err)
			}
			if got := s.Clients(); got != n {
				b.Fatalf("loaded %d clients, want %d", got, n)
			}
			b.StopTimer()
			retained = testproc.LiveHeap() - before
			if err := s.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(retained)/(1<<20), "MB-retained")
	})
	b.Run("reload", func(b *testing.B) {
		b.ReportAllocs()
		s, err := store.OpenPostgres(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close(ctx)
		for b.Loop() {
			if err := s.Reload(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// openWarmStore is setup() with a long cache TTL and "alice" already
// cached: the hot path of the benchmarks and allocation tests.
func openWarmStore(tb testing.TB) *pgBundle {
	tb.Helper()
	bd := setup(tb, func(c *store.PostgresConfig) { c.CacheTTL = time.Hour })
	if u, err := bd.store.LookupUser(context.Background(), "alice", time.Now()); u == nil || err != nil {
		tb.Fatalf("LookupUser = %v, %v", u, err)
	}
	return bd
}

// BenchmarkPostgresLookupUserCached is the hot path of a JWT request: a warm
// cache entry. Target: 0 allocs, < 200 ns.
func BenchmarkPostgresLookupUserCached(b *testing.B) {
	bd := openWarmStore(b)
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if u, _ := bd.store.LookupUser(ctx, "alice", now); u == nil {
			b.Fatal("miss")
		}
	}
}

// BenchmarkPostgresLookupUserCachedParallel is the same from every core.
func BenchmarkPostgresLookupUserCachedParallel(b *testing.B) {
	bd := openWarmStore(b)
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer() // setup (a database and a store) is not measured
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if u, _ := bd.store.LookupUser(ctx, "alice", now); u == nil {
				b.Error("miss")
				return
			}
		}
	})
}

// BenchmarkPostgresLookupClient is the snapshot lookup of an API key request.
func BenchmarkPostgresLookupClient(b *testing.B) {
	bd := openWarmStore(b)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if c, _ := bd.store.LookupClient("app", now); c == nil {
			b.Fatal("miss")
		}
	}
}

// BenchmarkPostgresMarkUsed is the per-request cost of the last_used writer.
func BenchmarkPostgresMarkUsed(b *testing.B) {
	bd := openWarmStore(b)
	c, _ := bd.store.LookupClient("app", time.Now())
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		bd.store.MarkUsed(c.ID, now)
	}
}
