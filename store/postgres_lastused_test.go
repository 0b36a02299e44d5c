package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/store"
)

// TestPostgresLastUsedCoalescing: 10,000 uses of 100 clients become one
// UPDATE per flush, writing each client's newest use.
func TestPostgresLastUsedCoalescing(t *testing.T) {
	t.Parallel()
	db, dsn := pgtest.NewPool(t)
	ctx := context.Background()
	const clients, uses = 100, 10000
	ids := make([]string, clients)
	for i := range ids {
		ids[i] = pgtest.InsertClient(t, db, pgtest.Client{ClientKey: fmt.Sprintf("c%03d", i)})
	}
	s, _ := openStore(t, dsn, nil)
	notifs := metricValue(t, s, store.MetricNotifications)

	base := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	newest := make([]time.Time, clients)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < uses; i += 4 {
				s.MarkUsed(ids[i%clients], base.Add(time.Duration(i)*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	for i := 0; i < uses; i++ {
		newest[i%clients] = base.Add(time.Duration(i) * time.Millisecond)
	}
	s.MarkUsed("00000000-0000-0000-0000-000000000000", base) // unknown id: ignored

	before := s.FlushStatements()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.FlushStatements() - before; n != 1 {
		t.Errorf("UPDATE statements for %d uses of %d clients = %d, want 1", uses, clients, n)
	}
	for i, id := range ids {
		var got time.Time
		if err := db.QueryRow(ctx, "SELECT last_used_at FROM api_clients WHERE id = $1", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(newest[i]) {
			t.Errorf("client %d last_used_at = %v, want %v", i, got, newest[i])
		}
	}
	// Nothing pending: the next flush sends nothing.
	before = s.FlushStatements()
	if err := s.Flush(ctx); err != nil || s.FlushStatements() != before {
		t.Errorf("empty flush sent %d statements, err %v", s.FlushStatements()-before, err)
	}
	// The flushes did not wake the change feed (the trigger ignores a
	// change of last_used_at alone): a change that does notify, committed
	// after them, is the next notification the feed receives.
	pgtest.Exec(t, db, "UPDATE api_clients SET name = name || '-marker' WHERE id = $1", ids[0])
	eventually(t, 5*time.Second, "the marker change applied", func() bool {
		c, err := s.LookupClient("c000", time.Now())
		return err == nil && c != nil && strings.HasSuffix(c.Name, "-marker")
	})
	if n := metricValue(t, s, store.MetricNotifications); n != notifs+1 {
		t.Errorf("notifications after the flushes and one marker change = %v, want %v", n, notifs+1)
	}
	if v := metricValue(t, s, store.MetricFlushRows); v != clients {
		t.Errorf("%s = %v, want %d", store.MetricFlushRows, v, clients)
	}
}

// TestPostgresLastUsedNeverBackwards: an older use never replaces a newer
// time, in memory or in the database (another replica may be ahead).
func TestPostgresLastUsedNeverBackwards(t *testing.T) {
	t.Parallel()
	db, dsn := pgtest.NewPool(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	ahead := t0.Add(time.Hour)
	idA := pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "a", LastUsedAt: &ahead})
	idB := pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "b"})
	s, _ := openStore(t, dsn, nil)

	s.MarkUsed(idA, t0)                  // older than the database
	s.MarkUsed(idB, t0.Add(time.Minute)) // newest in memory
	s.MarkUsed(idB, t0)                  // an older use arriving later
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		want time.Time
	}{
		{idA, ahead},
		{idB, t0.Add(time.Minute)},
	}
	for _, tt := range tests {
		var got time.Time
		if err := db.QueryRow(ctx, "SELECT last_used_at FROM api_clients WHERE id = $1", tt.id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(tt.want) {
			t.Errorf("last_used_at of %s = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// TestPostgresLastUsedRetryAndClose: a failed flush keeps the marks for the
// next one, and Close flushes what is pending.
func TestPostgresLastUsedRetryAndClose(t *testing.T) {
	t.Parallel()
	db, dsn := pgtest.NewPool(t)
	ctx := context.Background()
	id := pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "a"})
	s, err := store.OpenPostgres(ctx, store.PostgresConfig{DSN: dsn, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	s.MarkUsed(id, t1)

	// Hold a lock on the table so the flush times out.
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE api_clients IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = s.Flush(fctx)
	cancel()
	if err == nil {
		t.Fatalf("Flush under a table lock succeeded")
	}
	if v := metricValue(t, s, store.MetricFlushFailures); v != 1 {
		t.Errorf("%s = %v, want 1", store.MetricFlushFailures, v)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var got *time.Time
	if err := db.QueryRow(ctx, "SELECT last_used_at FROM api_clients WHERE id = $1", id).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got == nil || !got.Equal(t1) {
		t.Errorf("last_used_at after a failed flush and Close = %v, want %v", got, t1)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestPostgresLastUsedTicker: the writer flushes on its own every
// FlushInterval.
func TestPostgresLastUsedTicker(t *testing.T) {
	t.Parallel()
	db, dsn := pgtest.NewPool(t)
	ctx := context.Background()
	id := pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "a"})
	s, _ := openStore(t, dsn, func(c *store.PostgresConfig) { c.FlushInterval = 50 * time.Millisecond })
	at := time.Date(2026, 3, 30, 12, 0, 0, 0, time.UTC)
	s.MarkUsed(id, at)
	eventually(t, 2*time.Second, "ticker flush", func() bool {
		var got *time.Time
		_ = db.QueryRow(ctx, "SELECT last_used_at FROM api_clients WHERE id = $1", id).Scan(&got)
		return got != nil && got.Equal(at)
	})
}
