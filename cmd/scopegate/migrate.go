package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/migrations"
)

// cmdMigrate runs `scopegate migrate` (apply pending migrations) and
// `scopegate migrate status` (list applied and pending files) against
// SCOPEGATE_DATABASE_URL.
func cmdMigrate(args []string, stdout, stderr io.Writer) error {
	status := false
	switch {
	case len(args) == 0:
	case len(args) == 1 && args[0] == "status":
		status = true
	default:
		return &usageError{msg: "usage: scopegate migrate [status]"}
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "not set: migrate needs the PostgreSQL database URL"}
	}
	connCfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		// pgx redacts the password in its parse errors; say no more than that.
		return &ConfigError{Var: "SCOPEGATE_DATABASE_URL", Msg: "cannot parse the connection string"}
	}
	if cfg.DatabaseConnectTimeout > 0 {
		connCfg.ConnectTimeout = cfg.DatabaseConnectTimeout
	}
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return fmt.Errorf("migrate: cannot connect to the database (%s:%d, database %q): %s",
			connCfg.Host, connCfg.Port, connCfg.Database, connectErrLine(err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if status {
		return printMigrateStatus(ctx, conn, stdout)
	}
	res, err := migrations.Migrate(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if res.Baseline {
		fmt.Fprintf(stdout, "baseline  %s (existing member schema matches the snapshot; recorded, not run)\n",
			migrations.Files()[0].Name)
	}
	for _, name := range res.Applied {
		fmt.Fprintf(stdout, "applied   %s\n", name)
	}
	if !res.Baseline && len(res.Applied) == 0 {
		fmt.Fprintln(stdout, "nothing to do: every migration is applied")
	}
	return nil
}

func printMigrateStatus(ctx context.Context, conn *pgx.Conn, stdout io.Writer) error {
	st, err := migrations.Status(ctx, conn)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tMIGRATION\tAPPLIED AT\tNOTE")
	pending := 0
	for _, s := range st {
		state, at := "pending", ""
		var notes []string
		if s.Applied {
			state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
		} else {
			pending++
		}
		if s.Baseline {
			notes = append(notes, "baseline")
		}
		if s.WillBaseline {
			notes = append(notes, "existing member schema: will be recorded as a baseline")
		}
		if s.Modified {
			notes = append(notes, "file changed since it was applied")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", state, s.Name, at, strings.Join(notes, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d applied, %d pending\n", len(st)-pending, pending)
	return nil
}

// connectErrLine folds pgx's multi-line connect errors (one line per attempted
// address) into one line, dropping repeated attempts.
func connectErrLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !slices.Contains(parts, l) {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}
