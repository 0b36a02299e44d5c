package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scopegate/scopegate/internal/gcload"
	"github.com/scopegate/scopegate/store"
)

// openPostgres opens the PostgreSQL store (SCOPEGATE_DATABASE_URL): client
// snapshot, user cache, change feed and the last_used_at writer. The DSN is
// never logged or put in an error.
func openPostgres(ctx context.Context, cfg *Config, logger *slog.Logger) (*openedStore, error) {
	if err := checkSchema(ctx, cfg); err != nil {
		return nil, err
	}
	set := metrics.NewSet()
	// OpenPostgres returns once the first full load is in: that load keeps
	// nearly all it allocates, so it runs at a higher GOGC (gcload.Raise),
	// and the setting found is back before serving.
	restore := gcload.Raise()
	s, err := store.OpenPostgres(ctx, store.PostgresConfig{
		DSN:               cfg.DatabaseURL,
		Logger:            logger,
		Metrics:           set,
		CacheTTL:          cfg.CacheTTL,
		NegativeCacheTTL:  cfg.NegativeCacheTTL,
		StaleTTL:          cfg.StaleTTL,
		FlushInterval:     cfg.LastUsedFlushInterval,
		ReloadInterval:    cfg.ClientReloadInterval,
		ConnectTimeout:    cfg.DatabaseConnectTimeout,
		LegacyPermissions: cfg.LegacyPermissions,
		UserSync:          store.UserSyncConfig{Enabled: cfg.userSyncOn(), Interval: cfg.UserSyncInterval},
	})
	restore()
	if errors.Is(err, store.ErrInvalidDatabaseURL) {
		return nil, &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "cannot be parsed as a PostgreSQL connection string"}
	}
	if missingSchema(err) {
		return nil, errors.New("opening the PostgreSQL store (SCOPEGATE_DATABASE_URL): " + errNoSchema)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the PostgreSQL store (SCOPEGATE_DATABASE_URL): %w", err)
	}
	o := &openedStore{store: s, metrics: []*metrics.Set{set}, kind: "postgres", view: s}
	if cfg.userSyncOn() {
		o.users = s
	}
	return o, nil
}

// openFileStore opens the declarative file store (SCOPEGATE_STORE_FILE),
// watched for changes and reloaded on SIGHUP.
func openFileStore(_ context.Context, cfg *Config, logger *slog.Logger) (*openedStore, error) {
	// The store logs the reloads its watcher makes; reload logs those of
	// SIGHUP: one line each.
	f, err := store.OpenFile(cfg.StoreFile, store.FileConfig{Logger: logger})
	if err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_STORE_FILE", Msg: err.Error()}
	}
	return &openedStore{store: f, kind: "file", view: f}, nil
}
