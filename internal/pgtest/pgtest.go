// Package pgtest gives tests a fresh PostgreSQL database each, cloned from a
// migrated template database so set-up stays fast.
//
// The server comes from, in order: SCOPEGATE_TEST_DATABASE_URL (a DSN of a
// role that may create databases), a server on 127.0.0.1:5432 (user
// postgres, trust auth), or a throwaway cluster started from the installed
// initdb/pg_ctl (PATH, /usr/lib/postgresql/*/bin) in a temporary directory on
// a free loopback port. The throwaway cluster is stopped by [Main] when the
// test binary ends (and by a watchdog if Main was not used). Without any of
// them the tests are skipped with a loud message, or fail when CI=true.
//
// Several test binaries may run at once: the template is named after a hash
// of the migration files and built under an advisory lock, and every test
// database is dropped in t.Cleanup.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/migrations"
)

// EnvURL names the variable that points the harness at a server.
const EnvURL = "SCOPEGATE_TEST_DATABASE_URL"

const defaultLocalDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// templateLockKey serializes template creation across test processes.
const templateLockKey int64 = 0x7367746d706c7431 // "sgtmplt1"

type server struct {
	adminDSN string
	admin    *pgxpool.Pool
	cluster  *cluster
	skip     string // why no server is available
	err      error  // a configured server that does not work

	tplOnce sync.Once
	tpl     string
	tplErr  error
}

var (
	srvOnce sync.Once
	srv     *server
)

// Main runs the tests and stops a throwaway cluster afterwards. Use it from
// TestMain in packages that use pgtest:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the throwaway cluster, if this process started one. [Main]
// calls it.
func Stop() {
	if srv != nil && srv.cluster != nil {
		if srv.admin != nil {
			srv.admin.Close()
		}
		srv.cluster.stop()
	}
}

func getServer() *server {
	srvOnce.Do(func() { srv = connectServer() })
	return srv
}

func connectServer() *server {
	ctx := context.Background()
	if dsn := os.Getenv(EnvURL); dsn != "" {
		pool, err := openAdmin(ctx, dsn)
		if err != nil {
			return &server{err: fmt.Errorf("%s is set but unusable: %w", EnvURL, err)}
		}
		return &server{adminDSN: dsn, admin: pool}
	}
	if pool, err := openAdmin(ctx, defaultLocalDSN); err == nil {
		return &server{adminDSN: defaultLocalDSN, admin: pool}
	}
	c, err := startCluster()
	if err != nil {
		if errors.Is(err, errNoBinaries) {
			return &server{skip: "no PostgreSQL: " + EnvURL + " is unset, nothing answers on 127.0.0.1:5432, and no initdb/pg_ctl is installed"}
		}
		return &server{err: fmt.Errorf("starting a throwaway PostgreSQL cluster: %w", err)}
	}
	pool, err := openAdmin(ctx, c.dsn)
	if err != nil {
		c.stop()
		return &server{err: fmt.Errorf("connecting to the throwaway cluster: %w", err)}
	}
	return &server{adminDSN: c.dsn, admin: pool, cluster: c}
}

func openAdmin(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// available returns the server or ends the test: Skip with a loud message,
// or Fatal when CI=true or a configured server does not work.
func available(t testing.TB) *server {
	t.Helper()
	s := getServer()
	if s.err != nil {
		t.Fatalf("pgtest: %v", s.err)
	}
	if s.skip != "" {
		testproc.SkipOrFail(t, "!!! DATABASE TEST (pgtest) !!! "+s.skip)
	}
	return s
}

// NewDB returns the DSN of a fresh database with every migration applied,
// dropped when the test ends.
func NewDB(t testing.TB) string {
	t.Helper()
	s := available(t)
	tpl, err := s.template()
	if err != nil {
		t.Fatalf("pgtest: preparing the template database: %v", err)
	}
	return s.create(t, tpl)
}

// NewEmptyDB returns the DSN of a fresh empty database (no migrations),
// dropped when the test ends.
func NewEmptyDB(t testing.TB) string {
	t.Helper()
	return available(t).create(t, "template0")
}

// NewPool returns a pool on a fresh migrated database and its DSN; the pool
// is closed and the database dropped when the test ends.
func NewPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	dsn := NewDB(t)
	return Connect(t, dsn), dsn
}

// Connect opens a pool on dsn, closed when the test ends.
func Connect(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pgtest: connecting: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func (s *server) create(t testing.TB, template string) string {
	t.Helper()
	name := "scopegate_test_" + randomHex(8)
	ctx := context.Background()
	sql := "CREATE DATABASE " + ident(name) + " TEMPLATE " + ident(template)
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if _, err = s.admin.Exec(ctx, sql); err == nil || !isSourceBusy(err) {
			break
		}
		// Another session is briefly connected to the template (55006).
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping %s: %v", name, err)
		}
	})
	return withDatabase(s.adminDSN, name)
}

func isSourceBusy(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55006"
}

// template returns the name of the migrated template database, building it
// once per migration set under an advisory lock.
func (s *server) template() (string, error) {
	s.tplOnce.Do(func() { s.tpl, s.tplErr = s.buildTemplate() })
	return s.tpl, s.tplErr
}

func (s *server) buildTemplate() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "scopegate_tpl_" + migrations.Hash()
	conn, err := s.admin.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLockKey) //nolint:errcheck
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	// Build under another name and rename at the end, so a crash midway
	// never leaves a half-migrated template behind under the real name.
	build := name + "_build"
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(build)+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident(build)+" TEMPLATE template0"); err != nil {
		return "", err
	}
	mc, err := pgx.Connect(ctx, withDatabase(s.adminDSN, build))
	if err != nil {
		return "", err
	}
	_, err = migrations.Migrate(ctx, mc)
	mc.Close(context.Background())
	if err != nil {
		return "", fmt.Errorf("migrating the template: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+ident(build)+" RENAME TO "+ident(name)); err != nil {
		return "", err
	}
	return name, nil
}

// withDatabase returns dsn pointing at database name (URL or keyword/value
// form).
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + name
			return u.String()
		}
	}
	// In keyword/value form the last occurrence of a keyword wins.
	return dsn + " dbname=" + name
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
