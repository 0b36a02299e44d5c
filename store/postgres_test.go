package store_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/syncbuf"
	"github.com/scopegate/scopegate/store"
)

// pgBundle is a migrated database with an open store on it.
type pgBundle struct {
	db    *pgxpool.Pool
	dsn   string
	store *store.Postgres
	logs  *syncbuf.Buffer
}

// openStore opens a store on dsn with test-friendly intervals, closed when
// the test ends.
func openStore(t testing.TB, dsn string, edit func(*store.PostgresConfig)) (*store.Postgres, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg := store.PostgresConfig{
		DSN:               dsn,
		Logger:            slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		FlushInterval:     time.Hour, // tests flush explicitly
		HealthInterval:    200 * time.Millisecond,
		ConnectTimeout:    2 * time.Second,
		LegacyPermissions: true,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := store.OpenPostgres(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, logs
}

// setup makes a migrated database holding storetest.Basic() and a store on it.
func setup(t testing.TB, edit func(*store.PostgresConfig)) *pgBundle {
	t.Helper()
	db, dsn := pgtest.NewPool(t)
	pgtest.Exec(t, db, storetest.Basic().SQL())
	s, logs := openStore(t, dsn, edit)
	if !s.Ready(time.Now()) {
		t.Fatalf("store not ready after OpenPostgres; logs:\n%s", logs)
	}
	if strings.Contains(logs.String(), "triggers are missing") {
		t.Fatalf("missing-trigger warning on a migrated database; logs:\n%s", logs)
	}
	return &pgBundle{db: db, dsn: dsn, store: s, logs: logs}
}

// eventually polls cond every millisecond until it holds or within passes;
// it returns how long it took.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// tcpProxy forwards a loopback port to target, so a test can cut the store
// off the database and reconnect it.
type tcpProxy struct {
	t      testing.TB
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target}
	p.start("127.0.0.1:0")
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start(addr string) {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
}

// stop closes the listener and every forwarded connection.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// dsnVia rewrites a DSN (URL or keyword/value form) to go through the
// proxy at addr.
func dsnVia(t testing.TB, dsn, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = addr
		return u.String()
	}
	return dsn + " host=" + host + " port=" + port // the last occurrence wins
}

func hostPort(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(cfg.ConnConfig.Host, itoa(int(cfg.ConnConfig.Port)))
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

func isUnavailable(err error) bool { return errors.Is(err, store.ErrUnavailable) }
