package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
func sha256Hex(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// seedSQL fills a migrated database. User 1 (the proxy-jwt user) holds 100
// company grants on module inventory; every other user holds 10 grants mixing
// company and site scopes over several modules.
var seedSQL = []string{
	`INSERT INTO modules (module_key, name, status)
	 SELECT m, initcap(m), 'active' FROM unnest(ARRAY['inventory','billing','stock','reports','hr','crm','fleet','orders','payroll','audit']) m`,
	fmt.Sprintf(`INSERT INTO companies (company_key, name, status)
	 SELECT 'c' || lpad(g::text, 3, '0'), 'Company ' || g, 'active' FROM generate_series(1, %d) g`, nCompanies),
	fmt.Sprintf(`INSERT INTO sites (site_key, company_id, name, status)
	 SELECT c.company_key || '-s' || lpad(s::text, 2, '0'), c.id, 'Site ' || s, 'active'
	 FROM companies c, generate_series(1, %d) s`, nSitesPer),
	fmt.Sprintf(`INSERT INTO users (authentik_sub, email, display_name, status, is_active)
	 SELECT 'user-' || lpad(g::text, 5, '0'), 'user' || g || '@bench.test', 'User ' || g, 'active', true
	 FROM generate_series(1, %d) g`, nUsers),
	`INSERT INTO user_scope_permissions (user_id, module_id, action, scope_type, company_id)
	 SELECT u.id, m.id, 'view', 'company', c.id
	 FROM users u, modules m, companies c
	 WHERE u.authentik_sub = 'user-00001' AND m.module_key = 'inventory'`,
	// Other users: 5 company grants and 5 site grants each.
	`INSERT INTO user_scope_permissions (user_id, module_id, action, scope_type, company_id)
	 SELECT u.id, m.id, a.action::permission_action, 'company', c.id
	 FROM users u
	 CROSS JOIN generate_series(0, 4) k
	 JOIN modules m ON m.module_key = (ARRAY['inventory','billing','stock','reports','orders'])[k + 1]
	 JOIN companies c ON c.company_key = 'c' || lpad((((substr(u.authentik_sub, 6)::int * 7 + k * 13) % 100) + 1)::text, 3, '0')
	 CROSS JOIN (VALUES ('view')) a(action)
	 WHERE u.authentik_sub <> 'user-00001'`,
	`INSERT INTO user_scope_permissions (user_id, module_id, action, scope_type, site_id)
	 SELECT u.id, m.id, 'update', 'site', s.id
	 FROM users u
	 CROSS JOIN generate_series(0, 4) k
	 JOIN modules m ON m.module_key = 'inventory'
	 JOIN sites s ON s.site_key = 'c' || lpad((((substr(u.authentik_sub, 6)::int * 11 + k * 17) % 100) + 1)::text, 3, '0')
	                  || '-s' || lpad(((k % 10) + 1)::text, 2, '0')
	 WHERE u.authentik_sub <> 'user-00001'`,
}

// clientLists returns the lists every benchmark client holds: 10 CIDRs, 10
// origins and 20 path globs (the shapes of the policy benchmark). Clients
// have no rate limit, so the benchmark measures authorization, not throttling.
func clientLists() (ips, origins, paths []string) {
	for i := 0; i < 9; i++ {
		ips = append(ips, fmt.Sprintf("10.%d.0.0/16", i))
	}
	ips = append(ips, "127.0.0.0/8")
	for i := 0; i < 9; i++ {
		origins = append(origins, fmt.Sprintf("https://app%d.bench.test", i))
	}
	origins = append(origins, "https://*.example.test")
	for i := 0; i < 18; i++ {
		paths = append(paths, fmt.Sprintf("GET /svc%d/**", i))
	}
	paths = append(paths, "/public/**", "/api/**")
	return ips, origins, paths
}

// seedClients bulk-loads the api_clients rows.
func seedClients(ctx context.Context, conn *pgx.Conn) error {
	ips, origins, paths := clientLists()
	js := func(l []string) string { return `["` + strings.Join(l, `","`) + `"]` }
	rows := make([][]any, 0, nClients)
	for i := 1; i <= nClients; i++ {
		rows = append(rows, []any{clientKey(i), fmt.Sprintf("Bench client %d", i), "active", "sha256:" + sha256Hex(clientSecret(i)), js(origins), js(ips), js(paths)})
	}
	_, err := conn.CopyFrom(ctx, pgx.Identifier{"api_clients"},
		[]string{"client_key", "name", "status", "api_key_hash", "allowed_origins", "allowed_ips", "allowed_paths"},
		pgx.CopyFromRows(rows))
	return err
}

// createBenchDB drops and recreates the database name on the server of
// adminURL and returns its URL.
func createBenchDB(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name), nil
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
	if err := seedClients(ctx, conn); err != nil {
		return fmt.Errorf("seeding api_clients: %w", err)
	}
	for _, q := range seedSQL {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("seeding: %w\n%s", err, q)
		}
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
