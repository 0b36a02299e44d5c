package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/storetest"
)

// Fixture sizes (issue 6): 1,000 API clients, 10,000 users with realistic
// grants, 100 companies, 1,000 sites.
const (
	nClients   = 1000
	nUsers     = 10000
	nCompanies = 100
	nSitesPer  = 10
)

func clientKey(i int) string    { return fmt.Sprintf("bench-%04d", i) }
func clientSecret(i int) string { return fmt.Sprintf("secret-%04d-bench-not-for-production", i) }
func apiToken(i int) string     { return clientKey(i) + "." + clientSecret(i) }
func userSub(i int) string      { return fmt.Sprintf("user-%05d", i) }
func companyKey(i int) string   { return fmt.Sprintf("c%03d", i) }
func siteKey(c, s int) string   { return fmt.Sprintf("c%03d-s%02d", c, s) }

// copyFixture bulk-loads f into a migrated database, table by table with
// COPY, so that -store pg and -store file hold the same rows (benchFixture).
func copyFixture(ctx context.Context, conn *pgx.Conn, f storetest.Fixture) error {
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	js := func(l []string) string {
		b, _ := json.Marshal(append([]string{}, l...))
		return string(b)
	}
	ids := map[string]map[string]string{"module": {}, "company": {}, "site": {}, "user": {}}
	var tables []struct {
		name string
		cols []string
		rows [][]any
	}
	add := func(name string, cols []string, rows [][]any) {
		tables = append(tables, struct {
			name string
			cols []string
			rows [][]any
		}{name, cols, rows})
	}
	var rows [][]any
	for _, m := range f.Modules {
		ids["module"][m.Key] = m.ID
		rows = append(rows, []any{m.ID, m.Key, m.Key, m.Status})
	}
	add("modules", []string{"id", "module_key", "name", "status"}, rows)
	rows = nil
	for _, c := range f.Companies {
		ids["company"][c.Key] = c.ID
		rows = append(rows, []any{c.ID, c.Key, c.Key, c.Status})
	}
	add("companies", []string{"id", "company_key", "name", "status"}, rows)
	rows = nil
	for _, x := range f.Sites {
		ids["site"][x.Key] = x.ID
		rows = append(rows, []any{x.ID, x.Key, x.CompanyID, x.Key, x.Status})
	}
	add("sites", []string{"id", "site_key", "company_id", "name", "status"}, rows)
	rows = nil
	for _, u := range f.Users {
		ids["user"][u.Sub] = u.ID
		rows = append(rows, []any{u.ID, u.Sub, null(u.Email), null(u.DisplayName), u.Status, u.IsActive})
	}
	add("users", []string{"id", "authentik_sub", "email", "display_name", "status", "is_active"}, rows)
	rows = nil
	for _, c := range f.Clients {
		var rate any
		if c.RateLimitPerMin != nil {
			rate = int32(*c.RateLimitPerMin)
		}
		var exp any
		if c.ExpiresAt != nil {
			exp = *c.ExpiresAt
		}
		rows = append(rows, []any{c.ID, c.ClientKey, c.Name, c.Status, c.APIKeyHash,
			js(c.AllowedOrigins), js(c.AllowedIPs), js(c.AllowedPaths), rate, exp})
	}
	add("api_clients", []string{"id", "client_key", "name", "status", "api_key_hash",
		"allowed_origins", "allowed_ips", "allowed_paths", "rate_limit_per_min", "expires_at"}, rows)
	rows = nil
	for _, g := range f.Grants {
		scope, company, site := "company", any(ids["company"][g.Company]), any(nil)
		if g.Site != "" {
			scope, company, site = "site", nil, ids["site"][g.Site]
		}
		rows = append(rows, []any{ids["user"][g.User], ids["module"][g.Module], g.Action, scope, company, site})
	}
	add("user_scope_permissions", []string{"user_id", "module_id", "action", "scope_type", "company_id", "site_id"}, rows)
	for _, t := range tables {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromRows(t.rows)); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	return nil
}

// createBenchDB drops and recreates the database name on the server of
// adminURL and returns its URL.
func createBenchDB(ctx context.Context, adminURL, name string) (string, error) {
	if err := dropBenchDB(ctx, adminURL, name); err != nil {
		return "", fmt.Errorf("dropping an earlier %s on PostgreSQL: %w", name, err)
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name), nil
}

// dropBenchDB drops the database name on the server of adminURL.
func dropBenchDB(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
	return err
}

// seed fills the migrated database at url.
func seed(ctx context.Context, url string) error {
	start := time.Now()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// Bulk load without firing a NOTIFY per row at a gateway that is not yet running.
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		return err
	}
	if err := copyFixture(ctx, conn, benchFixture()); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seeded %d clients, %d users, %d companies, %d sites in %v\n",
		nClients, nUsers, nCompanies, nCompanies*nSitesPer, time.Since(start).Round(time.Millisecond))
	return nil
}

// xactCount returns the committed+rolled back transactions of the database,
// the closest per-database query counter PostgreSQL keeps.
func xactCount(ctx context.Context, url, name string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1`, name).Scan(&n)
	return n, err
}
