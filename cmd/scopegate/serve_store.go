package main

import (
	"context"
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scopegate/scopegate/proxy"
	"github.com/scopegate/scopegate/proxy/console"
	"github.com/scopegate/scopegate/store"
)

// servingStore is what serve needs from a store: the request path
// (proxy.Store) and Close.
type servingStore interface {
	proxy.Store
	Close(ctx context.Context) error
}

// openedStore is the store serve runs with, plus its metrics sets and
// what the operator page reads from it.
type openedStore struct {
	store   servingStore
	metrics []*metrics.Set
	users   proxy.UserSyncer // nil: user sync off (SCOPEGATE_USER_SYNC)
	kind    string           // "postgres" or "file" (SPEC §13 store.kind)
	view    console.StoreView
}

// openStore opens the PostgreSQL store (SCOPEGATE_DATABASE_URL) or the
// declarative file store (SCOPEGATE_STORE_FILE).
func openStore(ctx context.Context, cfg *Config, logger *slog.Logger) (*openedStore, error) {
	switch {
	case cfg.DatabaseURL != "":
		return openPostgres(ctx, cfg, logger)
	case cfg.StoreFile != "":
		return openFileStore(ctx, cfg, logger)
	}
	return nil, errNoStore
}

// errNoStore is the configuration error of a gateway given no store.
var errNoStore = &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "not set (set SCOPEGATE_DATABASE_URL, or SCOPEGATE_STORE_FILE for the declarative store)"}

var _ servingStore = store.Store(nil)
