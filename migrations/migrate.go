package migrations

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// VersionTable records applied migrations.
const VersionTable = "scopegate_schema_migrations"

// lockKey is the pg_advisory_lock key that serializes migrators (ASCII
// "scopegat"), so two replicas starting at once do not race.
const lockKey int64 = 0x73636f7065676174

// MemberTables are the member platform's eight tables (DB_SCHEMA_SNAPSHOT.md).
var MemberTables = []string{
	"api_clients", "auth_sync_state", "companies", "modules",
	"permissions", "sites", "user_scope_permissions", "users",
}

// Result says what [Migrate] did.
type Result struct {
	Baseline bool     // 0001 was recorded as a baseline on an existing member database
	Applied  []string // names of the files applied, in order
}

// MismatchError is returned when an existing member database does not match
// the snapshot; nothing was changed.
type MismatchError struct {
	Diffs []Difference
}

func (e *MismatchError) Error() string {
	return "existing member schema does not match DB_SCHEMA_SNAPSHOT.md; nothing was changed:\n" + FormatDiff(e.Diffs)
}

// Migrate applies the pending migrations on conn, each file in its own
// transaction, under a session advisory lock: a concurrent Migrate waits and
// then finds nothing to do. A second run is a no-op.
//
// When the version table is absent and the eight member tables exist, they
// are checked against the snapshot (columns, constraints and indexes the
// snapshot names must match exactly; objects the snapshot does not name are
// tolerated, as they cannot change what scopegate reads), 0001 is recorded as
// a baseline and only the later files run. Existing objects are never
// altered or dropped. A mismatch returns a *MismatchError; only some of the
// eight tables existing is an error too.
func Migrate(ctx context.Context, conn *pgx.Conn) (Result, error) {
	var res Result
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return res, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be done, and the lock must go.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", lockKey)
	}()

	files := Files()
	hasTable, err := versionTableExists(ctx, conn)
	if err != nil {
		return res, err
	}
	if !hasTable {
		present, due, err := baselineDue(ctx, conn)
		if err != nil {
			return res, err
		}
		switch {
		case due:
			if err := CheckMemberSchema(ctx, conn); err != nil {
				return res, err
			}
			res.Baseline = true
		case len(present) > 0:
			return res, fmt.Errorf("existing database has only some member tables (%v); refusing to migrate", present)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+VersionTable+` (
	version    bigint PRIMARY KEY,
	name       text NOT NULL,
	checksum   text NOT NULL,
	baseline   boolean NOT NULL DEFAULT false,
	applied_at timestamp with time zone NOT NULL DEFAULT now()
)`); err != nil {
			return res, fmt.Errorf("creating %s: %w", VersionTable, err)
		}
		if res.Baseline {
			f := baselineFile(files)
			if _, err := conn.Exec(ctx, `INSERT INTO `+VersionTable+` (version, name, checksum, baseline) VALUES ($1, $2, $3, true)`,
				f.Version, f.Name, f.Checksum); err != nil {
				return res, fmt.Errorf("recording baseline: %w", err)
			}
		}
	}
	applied, err := appliedVersions(ctx, conn)
	if err != nil {
		return res, err
	}
	for _, f := range files {
		if _, ok := applied[f.Version]; ok {
			continue
		}
		if err := applyFile(ctx, conn, f); err != nil {
			return res, err
		}
		res.Applied = append(res.Applied, f.Name)
	}
	return res, nil
}

func applyFile(ctx context.Context, conn *pgx.Conn, f File) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("applying %s: %w", f.Name, err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	// No arguments: the simple protocol runs the whole multi-statement file.
	if _, err := tx.Exec(ctx, f.SQL); err != nil {
		return fmt.Errorf("applying %s: %w", f.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+VersionTable+` (version, name, checksum) VALUES ($1, $2, $3)`,
		f.Version, f.Name, f.Checksum); err != nil {
		return fmt.Errorf("recording %s: %w", f.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing %s: %w", f.Name, err)
	}
	return nil
}

// CheckMemberSchema compares the member tables of the current schema with
// the snapshot. Missing or differing columns, constraints and indexes are a
// *MismatchError; extra ones are allowed.
func CheckMemberSchema(ctx context.Context, q Querier) error {
	want, err := Snapshot()
	if err != nil {
		return err
	}
	got, err := Introspect(ctx, q, want.TableNames())
	if err != nil {
		return err
	}
	var bad []Difference
	for _, d := range Diff(want, got) {
		if d.Missing() {
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		return &MismatchError{Diffs: bad}
	}
	return nil
}

func versionTableExists(ctx context.Context, q Querier) (bool, error) {
	rows, err := q.Query(ctx, `SELECT to_regclass($1) IS NOT NULL`, VersionTable)
	if err != nil {
		return false, fmt.Errorf("looking for %s: %w", VersionTable, err)
	}
	ok, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
	if err != nil {
		return false, fmt.Errorf("looking for %s: %w", VersionTable, err)
	}
	return ok, nil
}

func existingMemberTables(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, `
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY($1)
ORDER BY 1`, MemberTables)
	if err != nil {
		return nil, fmt.Errorf("looking for member tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("looking for member tables: %w", err)
	}
	return names, nil
}

type appliedRow struct {
	name, checksum string
	baseline       bool
	at             time.Time
}

func appliedVersions(ctx context.Context, q Querier) (map[int64]appliedRow, error) {
	rows, err := q.Query(ctx, `SELECT version, name, checksum, baseline, applied_at FROM `+VersionTable)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", VersionTable, err)
	}
	out := map[int64]appliedRow{}
	var v int64
	var r appliedRow
	if _, err := pgx.ForEachRow(rows, []any{&v, &r.name, &r.checksum, &r.baseline, &r.at}, func() error {
		out[v] = r
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading %s: %w", VersionTable, err)
	}
	return out, nil
}

// FileStatus is one migration in [Status].
type FileStatus struct {
	File
	Applied   bool
	Baseline  bool      // recorded as a baseline, not run
	AppliedAt time.Time // zero when pending
	Modified  bool      // applied, but the embedded file's checksum differs
	// WillBaseline: pending, and the member tables exist without a version
	// table, so [Migrate] will record this file as a baseline, not run it.
	WillBaseline bool
}

// baselineDue reports, for a database without the version table, which
// member tables exist and whether all of them do: then the member schema is
// adopted as migration BaselineVersion instead of being created.
func baselineDue(ctx context.Context, q Querier) (present []string, due bool, err error) {
	present, err = existingMemberTables(ctx, q)
	return present, err == nil && len(present) == len(MemberTables), err
}

// baselineFile returns the embedded migration recorded by a baseline.
func baselineFile(files []File) File {
	for _, f := range files {
		if f.Version == BaselineVersion {
			return f
		}
	}
	panic("migrations: no embedded migration has the baseline version")
}

// Status lists every embedded migration with whether it is applied. Unknown
// versions recorded in the database (from a newer binary) are not listed.
// It reads only; with no version table every file is pending.
func Status(ctx context.Context, q Querier) ([]FileStatus, error) {
	has, err := versionTableExists(ctx, q)
	if err != nil {
		return nil, err
	}
	applied := map[int64]appliedRow{}
	willBaseline := false
	if has {
		if applied, err = appliedVersions(ctx, q); err != nil {
			return nil, err
		}
	} else if _, willBaseline, err = baselineDue(ctx, q); err != nil {
		return nil, err
	}
	var out []FileStatus
	for _, f := range Files() {
		st := FileStatus{File: f}
		if r, ok := applied[f.Version]; ok {
			st.Applied, st.Baseline, st.AppliedAt = true, r.baseline, r.at
			st.Modified = r.checksum != f.Checksum
		} else if willBaseline && f.Version == BaselineVersion {
			st.WillBaseline = true
		}
		out = append(out, st)
	}
	return out, nil
}
