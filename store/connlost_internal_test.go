package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestConnectionLost: which failed user loads run again on a fresh
// connection (TestPostgresUserLoadAfterKilledConnections drives the real
// 57P01 case against PostgreSQL).
func TestConnectionLost(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"terminated by an administrator", context.Background(), &pgconn.PgError{Code: "57P01"}, true},
		{"PgBouncer disconnect", context.Background(), fmt.Errorf("batch: %w", &pgconn.PgError{Code: "08P01"}), true},
		{"statement error", context.Background(), &pgconn.PgError{Code: "42P01"}, false},
		{"EOF", context.Background(), io.ErrUnexpectedEOF, true},
		{"reset", context.Background(), &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{"context ended", ended, io.EOF, false},
		{"scan error", context.Background(), errors.New("can't scan into dest[0]"), false},
	}
	for _, c := range cases {
		if got := connectionLost(c.ctx, c.err); got != c.want {
			t.Errorf("%s: connectionLost = %v, want %v", c.name, got, c.want)
		}
	}
}
