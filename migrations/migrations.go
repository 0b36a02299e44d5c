// Package migrations holds scopegate's numbered SQL migrations, embedded in
// the binary, and the migrator that applies them (SPEC §2).
//
// 0001 is the member platform's schema exactly as DB_SCHEMA_SNAPSHOT.md
// describes it; 0002 and later are scopegate's own and only add objects. On
// an existing member database (the eight tables exist, no version table) the
// migrator checks the tables against the snapshot, records 0001 as a
// baseline and applies only the later files.
package migrations

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

//go:embed *.up.sql
var sqlFS embed.FS

//go:embed schema/DB_SCHEMA_SNAPSHOT.md
var snapshotText string

// File is one migration file.
type File struct {
	Version  int64  // the number before the first underscore
	Name     string // the file name, such as 0001_member_schema.up.sql
	SQL      string
	Checksum string // hex SHA-256 of SQL
}

// BaselineVersion is the migration that creates the member schema; on an
// existing member database it is recorded as applied without running.
const BaselineVersion = 1

// Files returns the embedded migrations in version order.
func Files() []File {
	files, err := load(sqlFS)
	if err != nil {
		// The embedded set is fixed at build time; a bad name is a
		// programmer error caught by the package tests.
		panic(err)
	}
	return files
}

func load(fsys fs.FS) ([]File, error) {
	names, err := fs.Glob(fsys, "*.up.sql")
	if err != nil {
		return nil, err
	}
	var out []File
	seen := map[int64]string{}
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_name.up.sql", n)
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: name must start with a positive number", n)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", prev, n, v)
		}
		seen[v] = n
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out = append(out, File{Version: v, Name: n, SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Hash returns a short hex digest over every migration's name and content.
// The test harness names its template database after it, so a changed
// migration gets a fresh template.
func Hash() string {
	h := sha256.New()
	for _, f := range Files() {
		h.Write([]byte(f.Name))
		h.Write([]byte{0})
		h.Write([]byte(f.SQL))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
