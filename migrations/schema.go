package migrations

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema is the shape of a set of tables: what DB_SCHEMA_SNAPSHOT.md
// describes and what [Introspect] reads from pg_catalog.
type Schema struct {
	Tables map[string]*Table
}

// Table is one table's columns, constraints and indexes, keyed by name.
type Table struct {
	Columns     map[string]Column
	Constraints map[string]Constraint
	Indexes     map[string]string // name → pg_get_indexdef
}

// Column is a column's type (format_type) and nullability.
type Column struct {
	Type    string
	NotNull bool
}

// Constraint is a constraint's kind (pg_constraint.contype) and definition
// (pg_get_constraintdef).
type Constraint struct {
	Kind string
	Def  string
}

// TableNames returns the table names in order.
func (s *Schema) TableNames() []string {
	out := make([]string, 0, len(s.Tables))
	for n := range s.Tables {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func newTable() *Table {
	return &Table{Columns: map[string]Column{}, Constraints: map[string]Constraint{}, Indexes: map[string]string{}}
}

// Snapshot returns the embedded DB_SCHEMA_SNAPSHOT.md, parsed.
func Snapshot() (*Schema, error) { return ParseSnapshot(snapshotText) }

var (
	reColumn     = regexp.MustCompile(`^([A-Za-z0-9_]+): (.+) \(not null: (true|false)\)$`)
	reConstraint = regexp.MustCompile(`^([A-Za-z0-9_]+) \(([a-z])\): (.+)$`)
	reIndex      = regexp.MustCompile(`^([A-Za-z0-9_]+): (CREATE .+)$`)
)

// ParseSnapshot parses the text of DB_SCHEMA_SNAPSHOT.md: a "Tables" list,
// then per table a heading with "Columns", "Constraints" and "Indexes"
// bullet lists.
func ParseSnapshot(text string) (*Schema, error) {
	s := &Schema{Tables: map[string]*Table{}}
	var (
		section string // "tables", "columns", "constraints", "indexes"
		cur     *Table
		curName string
		listed  = map[string]bool{}
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := strings.TrimRight(sc.Text(), " \t\r")
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		item, isBullet := strings.CutPrefix(line, "•")
		if !isBullet {
			item, isBullet = strings.CutPrefix(line, "- ")
		}
		if !isBullet {
			switch {
			case line == "Tables":
				section = "tables"
			case line == "Columns" && cur != nil:
				section = "columns"
			case line == "Constraints" && cur != nil:
				section = "constraints"
			case line == "Indexes" && cur != nil:
				section = "indexes"
			case listed[line]:
				if _, dup := s.Tables[line]; dup {
					return nil, fmt.Errorf("snapshot line %d: table %s described twice", lineNo, line)
				}
				cur, curName, section = newTable(), line, ""
				s.Tables[line] = cur
			default:
				section = "" // prose such as the title or the file size
			}
			continue
		}
		item = strings.TrimSpace(item)
		switch section {
		case "tables":
			listed[item] = true
		case "columns":
			m := reColumn.FindStringSubmatch(item)
			if m == nil {
				return nil, fmt.Errorf("snapshot line %d: %s: cannot parse column %q", lineNo, curName, item)
			}
			cur.Columns[m[1]] = Column{Type: m[2], NotNull: m[3] == "true"}
		case "constraints":
			m := reConstraint.FindStringSubmatch(item)
			if m == nil {
				return nil, fmt.Errorf("snapshot line %d: %s: cannot parse constraint %q", lineNo, curName, item)
			}
			cur.Constraints[m[1]] = Constraint{Kind: m[2], Def: m[3]}
		case "indexes":
			m := reIndex.FindStringSubmatch(item)
			if m == nil {
				return nil, fmt.Errorf("snapshot line %d: %s: cannot parse index %q", lineNo, curName, item)
			}
			cur.Indexes[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for name := range listed {
		if _, ok := s.Tables[name]; !ok {
			return nil, fmt.Errorf("snapshot: table %s is listed but not described", name)
		}
	}
	if len(s.Tables) == 0 {
		return nil, fmt.Errorf("snapshot: no tables found")
	}
	return s, nil
}

// Querier is what [Introspect] needs: *pgx.Conn, pgxpool.Pool and pgx.Tx
// satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Introspect reads the named tables of the current schema from pg_catalog:
// columns (format_type, attnotnull), constraints (contype,
// pg_get_constraintdef; NOT NULL entries of PostgreSQL 18+ are left out, as
// nullability is a column property here) and indexes (pg_get_indexdef).
// Tables that do not exist are absent from the result. A schema other than
// public is reported as public in index definitions, so a snapshot taken in
// public compares equal.
func Introspect(ctx context.Context, q Querier, tables []string) (*Schema, error) {
	s := &Schema{Tables: map[string]*Table{}}
	var schema string
	if err := scanOne(ctx, q, `SELECT current_schema()`, &schema); err != nil {
		return nil, fmt.Errorf("introspecting schema: %w", err)
	}
	rows, err := q.Query(ctx, `
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY($1)`, tables)
	if err != nil {
		return nil, fmt.Errorf("introspecting tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("introspecting tables: %w", err)
	}
	for _, n := range names {
		s.Tables[n] = newTable()
	}
	rows, err = q.Query(ctx, `
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY($1) AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped`, tables)
	if err != nil {
		return nil, fmt.Errorf("introspecting columns: %w", err)
	}
	var tbl, name, typ string
	var notNull bool
	if _, err := pgx.ForEachRow(rows, []any{&tbl, &name, &typ, &notNull}, func() error {
		s.Tables[tbl].Columns[name] = Column{Type: typ, NotNull: notNull}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("introspecting columns: %w", err)
	}
	rows, err = q.Query(ctx, `
SELECT c.relname, con.conname, con.contype::text, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY($1) AND con.contype <> 'n'`, tables)
	if err != nil {
		return nil, fmt.Errorf("introspecting constraints: %w", err)
	}
	var kind, def string
	if _, err := pgx.ForEachRow(rows, []any{&tbl, &name, &kind, &def}, func() error {
		s.Tables[tbl].Constraints[name] = Constraint{Kind: kind, Def: def}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("introspecting constraints: %w", err)
	}
	rows, err = q.Query(ctx, `
SELECT c.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY($1)`, tables)
	if err != nil {
		return nil, fmt.Errorf("introspecting indexes: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&tbl, &name, &def}, func() error {
		if schema != "public" {
			def = strings.Replace(def, " ON "+schema+".", " ON public.", 1)
		}
		s.Tables[tbl].Indexes[name] = def
		return nil
	}); err != nil {
		return nil, fmt.Errorf("introspecting indexes: %w", err)
	}
	return s, nil
}

func scanOne(ctx context.Context, q Querier, sql string, dst *string) error {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return err
	}
	v, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[string])
	*dst = v
	return err
}

// Difference is one way two schemas differ. Want is empty for an object
// only the actual schema has (extra); Got is empty for one it lacks
// (missing).
type Difference struct {
	Table, Kind, Name string // Kind: table, column, constraint, index
	Want, Got         string
}

// Missing reports whether the expected object is absent or defined
// differently (as opposed to an extra object).
func (d Difference) Missing() bool { return d.Want != "" }

// String renders the difference as "missing", "extra" or "differs" with
// the object and its definitions.
func (d Difference) String() string {
	obj := d.Table
	if d.Kind != "table" {
		obj = d.Table + " " + d.Kind + " " + d.Name
	}
	switch {
	case d.Got == "":
		return "missing   " + obj + ": " + d.Want
	case d.Want == "":
		return "extra     " + obj + ": " + d.Got
	default:
		return "differs   " + obj + ":\n            want " + d.Want + "\n            got  " + d.Got
	}
}

// FormatDiff renders differences one per line (sorted), for error messages
// and test failures.
func FormatDiff(diffs []Difference) string {
	lines := make([]string, len(diffs))
	for i, d := range diffs {
		lines[i] = "  " + d.String()
	}
	return strings.Join(lines, "\n")
}

// String renders the column as "<type> NOT NULL" or "<type> NULL".
func (c Column) String() string {
	if c.NotNull {
		return c.Type + " NOT NULL"
	}
	return c.Type + " NULL"
}

// Diff compares want (the snapshot) with got (introspected), both ways, and
// returns the differences sorted by table, kind and name. Column order is
// not compared.
func Diff(want, got *Schema) []Difference {
	var out []Difference
	add := func(tbl, kind, name, w, g string) {
		if w != g {
			out = append(out, Difference{Table: tbl, Kind: kind, Name: name, Want: w, Got: g})
		}
	}
	tables := map[string]bool{}
	for n := range want.Tables {
		tables[n] = true
	}
	for n := range got.Tables {
		tables[n] = true
	}
	for tn := range tables {
		wt, gt := want.Tables[tn], got.Tables[tn]
		if wt == nil || gt == nil {
			w, g := "", ""
			if wt != nil {
				w = "table"
			}
			if gt != nil {
				g = "table"
			}
			add(tn, "table", tn, w, g)
			continue
		}
		for _, n := range union(wt.Columns, gt.Columns) {
			add(tn, "column", n, colStr(wt.Columns, n), colStr(gt.Columns, n))
		}
		for _, n := range union(wt.Constraints, gt.Constraints) {
			add(tn, "constraint", n, conStr(wt.Constraints, n), conStr(gt.Constraints, n))
		}
		for _, n := range union(wt.Indexes, gt.Indexes) {
			add(tn, "index", n, wt.Indexes[n], gt.Indexes[n])
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Name < b.Name
	})
	return out
}

func colStr(m map[string]Column, n string) string {
	if c, ok := m[n]; ok {
		return c.String()
	}
	return ""
}

func conStr(m map[string]Constraint, n string) string {
	if c, ok := m[n]; ok {
		return "(" + c.Kind + ") " + c.Def
	}
	return ""
}

func union[V any](a, b map[string]V) []string {
	seen := make(map[string]bool, len(a)+len(b))
	var out []string
	for k := range a {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for k := range b {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
