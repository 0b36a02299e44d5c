package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewDBIsMigratedAndIsolated(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"a", "b", "c"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool, _ := NewPool(t)
			var n int
			if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM scopegate_schema_migrations").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n < 2 {
				t.Errorf("applied migrations = %d, want >= 2", n)
			}
			// Each database is fresh: a client inserted here is alone.
			InsertClient(t, pool, Client{ClientKey: "same-key"})
			if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM api_clients").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("api_clients rows = %d, want 1", n)
			}
		})
	}
}

func TestNewEmptyDBHasNoTables(t *testing.T) {
	t.Parallel()
	dsn := NewEmptyDB(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("relations in public = %d, want 0", n)
	}
}

func TestFixtures(t *testing.T) {
	t.Parallel()
	pool, _ := NewPool(t)
	ctx := context.Background()
	uid := InsertUser(t, pool, User{Sub: "sub-1", Email: "a@example.com"})
	mid := InsertModule(t, pool, "inventory", "")
	cid := InsertCompany(t, pool, "acme", "")
	sid := InsertSite(t, pool, "acme-hq", cid, "inactive")
	InsertGrant(t, pool, uid, mid, "view", "company", cid)
	InsertGrant(t, pool, uid, mid, "update", "site", sid)
	InsertLegacyGrant(t, pool, uid, "site", "acme-hq", "billing", "view")
	var usp, legacy int
	var siteStatus string
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM user_scope_permissions WHERE user_id = $1),
  (SELECT count(*) FROM permissions WHERE user_id = $1), (SELECT status::text FROM sites WHERE id = $2)`, uid, sid).
		Scan(&usp, &legacy, &siteStatus); err != nil {
		t.Fatal(err)
	}
	if usp != 2 || legacy != 1 || siteStatus != "inactive" {
		t.Errorf("grants = %d, legacy = %d, site status = %q; want 2, 1, inactive", usp, legacy, siteStatus)
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable", "postgres://u:p@127.0.0.1:5432/x?sslmode=disable"},
		{"host=127.0.0.1 user=postgres dbname=postgres", "host=127.0.0.1 user=postgres dbname=postgres dbname=x"},
	}
	for _, tt := range tests {
		if got := withDatabase(tt.in, "x"); got != tt.want {
			t.Errorf("withDatabase(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestThrowawayCluster exercises the last fallback directly: a cluster from
// the installed binaries, reachable, then stopped and removed.
func TestThrowawayCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	if _, _, err := findBinaries(); err != nil {
		t.Skip("no initdb/pg_ctl installed")
	}
	c, err := startCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.stop()
		if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
			t.Errorf("cluster directory %s still exists after stop", c.dir)
		}
	}()
	conn, err := pgx.Connect(context.Background(), c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}
