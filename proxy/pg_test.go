package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openPostgresStore returns the real PostgreSQL store on a fresh migrated
// database holding f (inserted with SQL), and a pool for test writes.
func openPostgresStore(t testing.TB, f storetest.Fixture) (*store.Postgres, *pgxpool.Pool) {
	t.Helper()
	pool, dsn := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, f.SQL()); err != nil {
		t.Fatalf("inserting the fixture: %v", err)
	}
	s, err := store.OpenPostgres(ctx, store.PostgresConfig{
		DSN:               dsn,
		Logger:            testLogger(t),
		FlushInterval:     100 * time.Millisecond,
		LegacyPermissions: true,
	})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if !s.Ready(time.Now()) {
		t.Fatal("the PostgreSQL store is not ready")
	}
	return s, pool
}

// TestReasonCodesPostgres runs the reason-code table end to end against the
// real PostgreSQL store: real server on loopback, real upstream, proxy and
// the three forward-auth conventions.
func TestReasonCodesPostgres(t *testing.T) {
	s, _ := openPostgresStore(t, storetest.Basic())
	e := newEnv(t, envOptions{store: s})
	for _, c := range reasonCases(t, e) {
		for _, mode := range modes {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				check(t, c, mode, e.send(c, mode), e)
			})
		}
	}
	t.Run("rate_limited", func(t *testing.T) {
		tok := e.fix.Token("limited")
		for i := 0; i < 2; i++ {
			if r := e.do(directPeer, reqText("GET", "/api/x", "X-API-Key", tok)); r.status != 200 {
				t.Fatalf("request %d: %d", i, r.status)
			}
		}
		for _, mode := range modes {
			r := e.send(reasonCase{target: "/api/x", headers: []string{"X-API-Key", tok}}, mode)
			if r.status != 429 || r.reason() != "rate_limited" || r.header.Get("Retry-After") == "" {
				t.Errorf("%s: %d %s", mode, r.status, r.body)
			}
		}
	})
}

// TestChangesApplyWithin1s: a revoked key, a suspended client, a removed
// grant and a deactivated user stop working within 1 s of the commit
// (SPEC §6). The measured delays are logged.
func TestChangesApplyWithin1s(t *testing.T) {
	s, pool := openPostgresStore(t, storetest.Basic())
	e := newEnv(t, envOptions{store: s})
	ctx := context.Background()
	alice := "Bearer " + jwtFor(t, "alice", time.Hour)
	steps := []struct {
		name   string
		raw    string
		sql    string
		status int
		reason string
	}{
		{"revoked key", reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")),
			`UPDATE api_clients SET status = 'revoked' WHERE client_key = 'app'`, 401, "api_key_inactive"},
		{"suspended client (forward-auth)", "", `UPDATE api_clients SET status = 'suspended' WHERE client_key = 'limited'`, 401, "api_key_inactive"},
		{"removed grant", reqText("PUT", "/api/companies/acme/sites/acme-hq/x", "Authorization", alice),
			`DELETE FROM user_scope_permissions WHERE action = 'update'`, 403, "permission_denied"},
		{"deactivated user", reqText("GET", "/api/me", "Authorization", alice),
			`UPDATE users SET is_active = false WHERE authentik_sub = 'alice'`, 403, "user_inactive"},
	}
	steps[1].raw = reqText("GET", "/_auth", "X-API-Key", e.fix.Token("limited"), "X-Original-Method", "GET", "X-Original-URI", "/api/x", "X-Forwarded-For", "127.0.0.1")
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			peerFor := directPeer
			if st.name == "suspended client (forward-auth)" {
				peerFor = trustedPeer
			}
			if r := e.do(peerFor, st.raw); r.status != 200 {
				t.Fatalf("before the change: %d %s", r.status, r.body)
			}
			if _, err := pool.Exec(ctx, st.sql); err != nil {
				t.Fatal(err)
			}
			committed := time.Now()
			var took time.Duration
			for {
				r := e.do(peerFor, st.raw)
				if r.status == st.status && r.reason() == st.reason {
					took = time.Since(committed)
					break
				}
				if time.Since(committed) > 5*time.Second {
					t.Fatalf("still %d %q 5 s after the commit", r.status, r.reason())
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Logf("%s: denied %v after the commit", st.name, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("%s took %v, want ≤ 1 s", st.name, took)
			}
		})
	}
}

// TestLastUsedRecorded: an allowed API-key request (proxy and forward-auth)
// sets api_clients.last_used_at; a denied one does not.
func TestLastUsedRecorded(t *testing.T) {
	s, pool := openPostgresStore(t, storetest.Basic())
	e := newEnv(t, envOptions{store: s})
	before := time.Now().Add(-time.Second)
	e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")))
	e.do(trustedPeer, reqText("GET", "/_auth", "X-API-Key", e.fix.Token("limited"), "X-Original-Method", "GET", "X-Original-URI", "/api/x", "X-Forwarded-For", "127.0.0.1"))
	e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("office"))) // ip_not_allowed
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(context.Background(), `SELECT client_key, last_used_at FROM api_clients WHERE last_used_at IS NOT NULL ORDER BY client_key`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Time{}
	for rows.Next() {
		var k string
		var at time.Time
		if err := rows.Scan(&k, &at); err != nil {
			t.Fatal(err)
		}
		got[k] = at
	}
	if len(got) != 2 || got["app"].Before(before) || got["limited"].Before(before) {
		t.Errorf("last_used_at rows: %v", got)
	}
}

// TestStoreUnavailablePostgres: with the database unreachable, the client
// snapshot keeps serving API keys (within the stale TTL), while a user not
// in the cache fails closed with 503 store_unavailable, through the proxy
// and forward-auth.
func TestStoreUnavailablePostgres(t *testing.T) {
	s, pool := openPostgresStore(t, storetest.Basic())
	e := newEnv(t, envOptions{store: s})
	ctx := context.Background()
	// An admin session on another database of the same server.
	cc := pool.Config().ConnConfig.Copy()
	db := cc.Database
	cc.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Skipf("no admin session on the postgres database: %v", err)
	}
	if _, err := admin.Exec(ctx, `ALTER DATABASE "`+db+`" ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `ALTER DATABASE "`+db+`" ALLOW_CONNECTIONS true`)
		_ = admin.Close(context.Background())
	})
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, db); err != nil {
		t.Fatal(err)
	}
	carol := "Bearer " + jwtFor(t, "carol", time.Hour)
	for _, mode := range modes {
		r := e.send(reasonCase{target: "/api/me", headers: []string{"Authorization", carol}}, mode)
		if r.status != 503 || r.reason() != "store_unavailable" {
			t.Errorf("%s: uncached user with the database down: %d %s, want 503 store_unavailable", mode, r.status, r.body)
		}
		r = e.send(reasonCase{target: "/api/things", headers: []string{"X-API-Key", e.fix.Token("app")}}, mode)
		if r.status != 200 {
			t.Errorf("%s: API key from the snapshot within the stale TTL: %d %s", mode, r.status, r.body)
		}
		r = e.send(reasonCase{target: "/api/things", headers: []string{"X-API-Key", "nobody.x"}}, mode)
		if r.status != 401 || r.reason() != "api_key_invalid" {
			t.Errorf("%s: unknown key with the database down: %d %s, want 401", mode, r.status, r.body)
		}
	}
}

// Interface guards: both stores serve the proxy.
var (
	_ Store = (*store.Postgres)(nil)
	_ Store = (*store.File)(nil)
)
