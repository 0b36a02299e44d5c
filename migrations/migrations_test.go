package migrations_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func execFile(t *testing.T, conn *pgx.Conn, path string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sql := string(b)
	if edit != nil {
		sql = edit(sql)
	}
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func versions(t *testing.T, conn *pgx.Conn) map[int64]bool {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT version, baseline FROM "+migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]bool{}
	var v int64
	var b bool
	if _, err := pgx.ForEachRow(rows, []any{&v, &b}, func() error { out[v] = b; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFilesAreNumberedAndEmbedded(t *testing.T) {
	t.Parallel()
	files := migrations.Files()
	want := []string{"0001_member_schema.up.sql", "0002_scopegate_notify.up.sql"}
	if len(files) < len(want) {
		t.Fatalf("Files() = %d files, want at least %d", len(files), len(want))
	}
	for i, w := range want {
		if files[i].Name != w || files[i].Version != int64(i+1) || files[i].SQL == "" {
			t.Errorf("Files()[%d] = %s v%d, want %s v%d", i, files[i].Name, files[i].Version, w, i+1)
		}
	}
	if h := migrations.Hash(); len(h) != 16 {
		t.Errorf("Hash() = %q, want 16 hex chars", h)
	}
}

func TestMigrateEmptyThenNoop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t, pgtest.NewEmptyDB(t))

	st, err := migrations.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Applied {
			t.Errorf("before migrate: %s applied, want pending", s.Name)
		}
	}
	res, err := migrations.Migrate(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if res.Baseline || len(res.Applied) != len(migrations.Files()) {
		t.Errorf("first Migrate = %+v, want every file applied, no baseline", res)
	}
	res, err = migrations.Migrate(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if res.Baseline || len(res.Applied) != 0 {
		t.Errorf("second Migrate = %+v, want a no-op", res)
	}
	st, err = migrations.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Applied || s.Baseline || s.Modified || s.AppliedAt.IsZero() {
			t.Errorf("after migrate: %s applied %v baseline %v modified %v at %v; want applied, not baseline, not modified",
				s.Name, s.Applied, s.Baseline, s.Modified, s.AppliedAt)
		}
	}
}

func TestMigrateConcurrentRunsBothSucceed(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewEmptyDB(t)
	const n = 4
	var wg sync.WaitGroup
	results := make([]migrations.Result, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		conn := connect(t, dsn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrations.Migrate(context.Background(), conn)
		}()
	}
	wg.Wait()
	applied := 0
	for i := range errs {
		if errs[i] != nil {
			t.Errorf("run %d: %v", i, errs[i])
		}
		applied += len(results[i].Applied)
	}
	if applied != len(migrations.Files()) {
		t.Errorf("files applied over all runs = %d, want %d (each exactly once)", applied, len(migrations.Files()))
	}
	if v := versions(t, connect(t, dsn)); len(v) != len(migrations.Files()) {
		t.Errorf("recorded versions = %v", v)
	}
}

// TestSchemaConformance migrates an empty database and compares pg_catalog
// with DB_SCHEMA_SNAPSHOT.md both ways.
func TestSchemaConformance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	want, err := migrations.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Tables) != 8 {
		t.Fatalf("snapshot tables = %v, want 8", want.TableNames())
	}
	conn := connect(t, pgtest.NewEmptyDB(t))
	if _, err := migrations.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	got, err := migrations.Introspect(ctx, conn, want.TableNames())
	if err != nil {
		t.Fatal(err)
	}
	if d := migrations.Diff(want, got); len(d) > 0 {
		t.Fatalf("migrated schema differs from DB_SCHEMA_SNAPSHOT.md:\n%s", migrations.FormatDiff(d))
	}
}

// TestSchemaConformanceCatchesAlteredMigration shows the conformance check
// failing when 0001 is altered: each edit is applied to an empty database
// and the diff must name the change.
func TestSchemaConformanceCatchesAlteredMigration(t *testing.T) {
	t.Parallel()
	want, err := migrations.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, diff string
	}{
		{"column type", "client_key         text NOT NULL", "client_key         varchar(64) NOT NULL",
			"differs   api_clients column client_key"},
		{"nullability", "email             text,", "email             text NOT NULL,",
			"differs   users column email"},
		{"extra column", "is_active         boolean NOT NULL DEFAULT true,", "is_active boolean NOT NULL DEFAULT true, nickname text,",
			"extra     users column nickname"},
		{"partial index predicate", "WHERE (scope_type = 'site'::scope_type);", ";",
			"differs   user_scope_permissions index uq_usp_site"},
		{"missing index", "CREATE INDEX idx_sites_company_id ON sites USING btree (company_id);", "",
			"missing   sites index idx_sites_company_id"},
		{"constraint name", "CONSTRAINT users_email_key UNIQUE (email)", "CONSTRAINT users_mail_key UNIQUE (email)",
			"missing   users constraint users_email_key"},
		{"fk action", "REFERENCES companies (id) ON DELETE CASCADE,\n    CONSTRAINT user_scope_permissions_module_id_fkey",
			"REFERENCES companies (id),\n    CONSTRAINT user_scope_permissions_module_id_fkey",
			"differs   user_scope_permissions constraint user_scope_permissions_company_id_fkey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conn := connect(t, pgtest.NewEmptyDB(t))
			execFile(t, conn, "0001_member_schema.up.sql", func(s string) string {
				if !strings.Contains(s, tt.old) {
					t.Fatalf("0001 does not contain %q", tt.old)
				}
				return strings.Replace(s, tt.old, tt.new, 1)
			})
			got, err := migrations.Introspect(ctx, conn, want.TableNames())
			if err != nil {
				t.Fatal(err)
			}
			diff := migrations.FormatDiff(migrations.Diff(want, got))
			if !strings.Contains(diff, tt.diff) {
				t.Errorf("diff after altering 0001 (%s) lacks %q:\n%s", tt.name, tt.diff, diff)
			}
		})
	}
}

// TestBaselineOnExistingMemberDatabase starts from the member schema built
// from plain DDL (no scopegate objects), with an extra enum label and an
// extra index as a live database may have: migrate records 0001 as a
// baseline, applies only 0002 and changes nothing that existed.
func TestBaselineOnExistingMemberDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn := connect(t, pgtest.NewEmptyDB(t))
	execFile(t, conn, "testdata/member_plain.sql", nil)
	pgtest.Exec(t, conn, "ALTER TYPE client_status ADD VALUE 'pending'")
	pgtest.Exec(t, conn, "CREATE INDEX idx_users_email_lower ON users (lower(email))")
	pgtest.InsertClient(t, conn, pgtest.Client{ClientKey: "pre-existing"})

	before, err := migrations.Introspect(ctx, conn, migrations.MemberTables)
	if err != nil {
		t.Fatal(err)
	}
	st, err := migrations.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Applied || !st[0].WillBaseline || st[1].WillBaseline {
		t.Errorf("Status before baseline: 0001 applied %v will-baseline %v, 0002 will-baseline %v; want 0001 pending as a baseline, 0002 pending",
			st[0].Applied, st[0].WillBaseline, st[1].WillBaseline)
	}
	res, err := migrations.Migrate(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Baseline || len(res.Applied) != len(migrations.Files())-1 || res.Applied[0] != "0002_scopegate_notify.up.sql" {
		t.Fatalf("Migrate = %+v, want baseline and only the files after 0001", res)
	}
	v := versions(t, conn)
	if baseline, ok := v[1]; !ok || !baseline {
		t.Errorf("version 1 recorded = %v, baseline = %v; want recorded as baseline", ok, baseline)
	}
	if baseline, ok := v[2]; !ok || baseline {
		t.Errorf("version 2 recorded = %v, baseline = %v; want applied", ok, baseline)
	}
	after, err := migrations.Introspect(ctx, conn, migrations.MemberTables)
	if err != nil {
		t.Fatal(err)
	}
	if d := migrations.Diff(before, after); len(d) > 0 {
		t.Errorf("baseline migrate changed existing objects:\n%s", migrations.FormatDiff(d))
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM api_clients WHERE client_key = 'pre-existing'").Scan(&n); err != nil || n != 1 {
		t.Errorf("pre-existing row count = %d, %v; want 1", n, err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'scopegate_notify%'").Scan(&n); err != nil || n == 0 {
		t.Errorf("scopegate triggers = %d, %v; want them created", n, err)
	}
	res, err = migrations.Migrate(ctx, conn)
	if err != nil || res.Baseline || len(res.Applied) != 0 {
		t.Errorf("second Migrate = %+v, %v; want a no-op", res, err)
	}
}

// TestBaselineRefusesMismatch: a member database that differs from the
// snapshot is refused with a readable diff, and nothing is created.
func TestBaselineRefusesMismatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, old, new, diff string
	}{
		{"nullable column made not null", "    email text,\n", "    email text NOT NULL,\n", "differs   users column email"},
		{"missing partial index", "CREATE UNIQUE INDEX uq_usp_site", "CREATE UNIQUE INDEX uq_usp_site_other", "missing   user_scope_permissions index uq_usp_site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			conn := connect(t, pgtest.NewEmptyDB(t))
			execFile(t, conn, "testdata/member_plain.sql", func(s string) string {
				if !strings.Contains(s, tt.old) {
					t.Fatalf("member_plain.sql lacks %q", tt.old)
				}
				return strings.Replace(s, tt.old, tt.new, 1)
			})
			_, err := migrations.Migrate(ctx, conn)
			var me *migrations.MismatchError
			if !errors.As(err, &me) {
				t.Fatalf("Migrate error = %v, want *MismatchError", err)
			}
			if !strings.Contains(err.Error(), tt.diff) {
				t.Errorf("error lacks %q:\n%v", tt.diff, err)
			}
			var exists bool
			if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", migrations.VersionTable).Scan(&exists); err != nil || exists {
				t.Errorf("version table exists = %v, %v; want nothing created", exists, err)
			}
		})
	}
}

func TestPartialMemberSchemaRefused(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.NewEmptyDB(t))
	pgtest.Exec(t, conn, "CREATE TABLE users (id uuid PRIMARY KEY)")
	if _, err := migrations.Migrate(context.Background(), conn); err == nil || !strings.Contains(err.Error(), "only some member tables") {
		t.Errorf("Migrate on a partial schema = %v, want refusal", err)
	}
}

func TestParseSnapshotErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, text, want string }{
		{"no tables", "hello", "no tables"},
		{"listed not described", "Tables\n  • a\n", "listed but not described"},
		{"bad column", "Tables\n  • a\na\nColumns\n  • id uuid\n", "cannot parse column"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := migrations.ParseSnapshot(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSnapshot(%q) error = %v, want %q", tt.text, err, tt.want)
			}
		})
	}
}

// TestNotifyTriggers checks the payload shape of SPEC §2 and that an update
// of only last_used_at sends nothing.
func TestNotifyTriggers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	listener := connect(t, dsn)
	pgtest.Exec(t, listener, "LISTEN scopegate_changes")
	db := connect(t, dsn)

	cid := pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "k1"})
	pgtest.Exec(t, db, "UPDATE api_clients SET last_used_at = now() WHERE id = $1", cid)
	pgtest.Exec(t, db, "UPDATE api_clients SET status = 'revoked' WHERE id = $1", cid)
	uid := pgtest.InsertUser(t, db, pgtest.User{Sub: "s1"})
	mid := pgtest.InsertModule(t, db, "m", "")
	co := pgtest.InsertCompany(t, db, "c", "")
	gid := pgtest.InsertGrant(t, db, uid, mid, "view", "company", co)
	pgtest.Exec(t, db, "DELETE FROM user_scope_permissions WHERE id = $1", gid)

	want := []string{
		`{"id": "` + cid + `", "op": "INSERT", "table": "api_clients"}`,
		`{"id": "` + cid + `", "op": "UPDATE", "table": "api_clients"}`,
		`{"id": "` + uid + `", "op": "INSERT", "table": "users"}`,
		`{"id": "` + mid + `", "op": "INSERT", "table": "modules"}`,
		`{"id": "` + co + `", "op": "INSERT", "table": "companies"}`,
		`{"id": "` + gid + `", "op": "INSERT", "table": "user_scope_permissions", "user_id": "` + uid + `"}`,
		`{"id": "` + gid + `", "op": "DELETE", "table": "user_scope_permissions", "user_id": "` + uid + `"}`,
	}
	for i, w := range want {
		n, err := listener.WaitForNotification(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n.Channel != "scopegate_changes" || n.Payload != w {
			t.Errorf("notification %d = %s %s, want %s", i, n.Channel, n.Payload, w)
		}
	}
}
