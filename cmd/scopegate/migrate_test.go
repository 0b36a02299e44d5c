package main

import (
	"bytes"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/pgtest"
)

func runMigrate(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"migrate"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// hasLine reports whether out has a line whose first fields are fields.
func hasLine(out string, fields ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= len(fields) && slices.Equal(f[:len(fields)], fields) {
			return true
		}
	}
	return false
}

func TestCmdMigrate(t *testing.T) {
	dsn := pgtest.NewEmptyDB(t)
	t.Setenv("SCOPEGATE_DATABASE_URL", dsn)
	t.Setenv("SCOPEGATE_STORE_FILE", "")

	code, out, errOut := runMigrate(t, "status")
	if code != exitOK || !hasLine(out, "pending", "0001_member_schema.up.sql") || !strings.Contains(out, "0 applied, 2 pending") {
		t.Fatalf("migrate status before = %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runMigrate(t)
	if code != exitOK || !hasLine(out, "applied", "0001_member_schema.up.sql") || !hasLine(out, "applied", "0002_scopegate_notify.up.sql") {
		t.Fatalf("migrate = %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runMigrate(t)
	if code != exitOK || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second migrate = %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runMigrate(t, "status")
	if code != exitOK || !strings.Contains(out, "2 applied, 0 pending") {
		t.Fatalf("migrate status after = %d\n%s%s", code, out, errOut)
	}
}

func TestCmdMigrateErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := l.Addr().String()
	l.Close() // nothing listens there now
	tests := []struct {
		name, url string
		args      []string
		code      int
		want      string
	}{
		{"missing url", "", nil, exitConfig, "SCOPEGATE_DATABASE_URL"},
		{"database down", "postgres://scopegate:supersecret@" + downAddr + "/member?sslmode=disable&connect_timeout=2", nil, exitFail, "cannot connect to the database"},
		{"database down status", "postgres://scopegate:supersecret@" + downAddr + "/member", []string{"status"}, exitFail, "cannot connect to the database"},
		{"unparsable url", "postgres://scopegate:supersecret@[::1/x", nil, exitConfig, "SCOPEGATE_DATABASE_URL"},
		{"bad usage", "", []string{"sideways"}, exitConfig, "usage: scopegate migrate [status]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SCOPEGATE_DATABASE_URL", tt.url)
			t.Setenv("SCOPEGATE_STORE_FILE", "")
			code, out, errOut := runMigrate(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("migrate %v = %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, tt.want)
			}
			if strings.Contains(out+errOut, "supersecret") {
				t.Errorf("output leaks the password: %s%s", out, errOut)
			}
			if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one: %q", n+1, errOut)
			}
		})
	}
}
