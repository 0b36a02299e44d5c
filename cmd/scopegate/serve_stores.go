package main

import (
	"context"
	"errors"
	"log/slog"
)

// openPostgres opens the PostgreSQL store. (Wired to store.OpenPostgres once
// it lands.)
func openPostgres(ctx context.Context, cfg *Config, logger *slog.Logger) (*openedStore, error) {
	return nil, errors.New("the PostgreSQL store is not built yet")
}

// openFileStore opens the declarative file store. (Wired to store.OpenFile
// once it lands.)
func openFileStore(ctx context.Context, cfg *Config, logger *slog.Logger) (*openedStore, error) {
	return nil, errors.New("the file store is not built yet")
}
