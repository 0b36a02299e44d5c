package storetest_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

// TestFixtureParity writes Basic both ways and checks that PostgreSQL holds
// exactly the rows the file store loads.
func TestFixtureParity(t *testing.T) {
	fx := storetest.Basic()
	path := filepath.Join(t.TempDir(), "store.yaml")
	if err := os.WriteFile(path, fx.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := store.OpenFile(path, store.FileConfig{NoWatch: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("OpenFile(Basic().YAML()) = %v", err)
	}
	defer f.Close(context.Background())
	d := f.Data()
	file := &store.FileData{ // a copy: Data's slices belong to the store
		Companies: append([]policy.CompanyRecord(nil), d.Companies...),
		Modules:   append([]policy.ModuleRecord(nil), d.Modules...),
		Sites:     append([]policy.SiteRecord(nil), d.Sites...),
		Users:     append([]policy.UserRecord(nil), d.Users...),
		Clients:   append([]policy.ClientRecord(nil), d.Clients...),
		Grants:    d.Grants,
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fx.SQL()); err != nil {
		t.Fatalf("inserting Basic().SQL(): %v", err)
	}

	var pg store.FileData
	pg.Grants = map[string][]policy.GrantRecord{}
	query(t, conn, `SELECT id::text, company_key, status::text FROM companies ORDER BY company_key`, func(r pgx.Rows) error {
		var c policy.CompanyRecord
		err := r.Scan(&c.ID, &c.Key, &c.Status)
		pg.Companies = append(pg.Companies, c)
		return err
	})
	query(t, conn, `SELECT id::text, module_key, status::text FROM modules ORDER BY module_key`, func(r pgx.Rows) error {
		var m policy.ModuleRecord
		err := r.Scan(&m.ID, &m.Key, &m.Status)
		pg.Modules = append(pg.Modules, m)
		return err
	})
	query(t, conn, `SELECT id::text, site_key, company_id::text, status::text FROM sites ORDER BY site_key`, func(r pgx.Rows) error {
		var s policy.SiteRecord
		err := r.Scan(&s.ID, &s.Key, &s.CompanyID, &s.Status)
		pg.Sites = append(pg.Sites, s)
		return err
	})
	query(t, conn, `SELECT id::text, authentik_sub, coalesce(email, ''), coalesce(display_name, ''), status::text, is_active FROM users ORDER BY authentik_sub`, func(r pgx.Rows) error {
		var u policy.UserRecord
		err := r.Scan(&u.ID, &u.Sub, &u.Email, &u.DisplayName, &u.Status, &u.IsActive)
		pg.Users = append(pg.Users, u)
		return err
	})
	query(t, conn, `SELECT id::text, client_key, name, status::text, api_key_hash, allowed_origins, allowed_ips, allowed_paths, rate_limit_per_min, expires_at
FROM api_clients ORDER BY client_key`, func(r pgx.Rows) error {
		var c policy.ClientRecord
		var rate *int32
		err := r.Scan(&c.ID, &c.ClientKey, &c.Name, &c.Status, &c.APIKeyHash, &c.AllowedOrigins, &c.AllowedIPs, &c.AllowedPaths, &rate, &c.ExpiresAt)
		if rate != nil {
			n := int(*rate)
			c.RateLimitPerMin = &n
		}
		if c.ExpiresAt != nil {
			u := c.ExpiresAt.UTC()
			c.ExpiresAt = &u
		}
		pg.Clients = append(pg.Clients, c)
		return err
	})
	query(t, conn, `SELECT p.user_id::text, m.module_key, p.action::text, p.scope_type::text, coalesce(p.company_id, p.site_id)::text
FROM user_scope_permissions p JOIN modules m ON m.id = p.module_id ORDER BY p.created_at, p.id`, func(r pgx.Rows) error {
		var user string
		var g policy.GrantRecord
		err := r.Scan(&user, &g.Module, &g.Action, &g.ScopeType, &g.ScopeID)
		pg.Grants[user] = append(pg.Grants[user], g)
		return err
	})

	sortRows(file)
	sortRows(&pg)
	for i := range file.Clients {
		file.Clients[i].UpdatedAt = time.Time{}
	}
	compare := []struct {
		name     string
		fromFile any
		fromPG   any
	}{
		{"companies", file.Companies, pg.Companies},
		{"modules", file.Modules, pg.Modules},
		{"sites", file.Sites, pg.Sites},
		{"users", file.Users, pg.Users},
		{"api_clients", file.Clients, pg.Clients},
		{"grants", grantSets(file.Grants), grantSets(pg.Grants)},
	}
	for _, c := range compare {
		if !reflect.DeepEqual(c.fromFile, c.fromPG) {
			t.Errorf("%s differ:\nfile: %+v\npg:   %+v", c.name, c.fromFile, c.fromPG)
		}
	}
}

func query(t *testing.T, conn *pgx.Conn, sql string, scan func(pgx.Rows) error) {
	t.Helper()
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// sortRows orders every table by key, as the queries do.
func sortRows(d *store.FileData) {
	sort.Slice(d.Companies, func(i, j int) bool { return d.Companies[i].Key < d.Companies[j].Key })
	sort.Slice(d.Modules, func(i, j int) bool { return d.Modules[i].Key < d.Modules[j].Key })
	sort.Slice(d.Sites, func(i, j int) bool { return d.Sites[i].Key < d.Sites[j].Key })
	sort.Slice(d.Users, func(i, j int) bool { return d.Users[i].Sub < d.Users[j].Sub })
	sort.Slice(d.Clients, func(i, j int) bool { return d.Clients[i].ClientKey < d.Clients[j].ClientKey })
}

// grantSets returns each user's grants as a sorted list, so order does not
// matter.
func grantSets(m map[string][]policy.GrantRecord) map[string][]policy.GrantRecord {
	out := map[string][]policy.GrantRecord{}
	for user, gs := range m {
		gs = append([]policy.GrantRecord(nil), gs...)
		sort.Slice(gs, func(i, j int) bool {
			a, b := gs[i], gs[j]
			if a.Module != b.Module {
				return a.Module < b.Module
			}
			if a.Action != b.Action {
				return a.Action < b.Action
			}
			return a.ScopeID < b.ScopeID
		})
		out[user] = gs
	}
	return out
}
