package main

import (
	"context"
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
// COPY, so that -store pg and -store file hold the same rows (benchFixture):
// the rows of storetest's Tables, which its SQL writes as INSERTs for the
// tests.
func copyFixture(ctx context.Context, conn *pgx.Conn, f storetest.Fixture) error {
	for _, t := range f.Tables() {
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{t.Name}, t.Cols, pgx.CopyFromRows(t.Rows)); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
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
