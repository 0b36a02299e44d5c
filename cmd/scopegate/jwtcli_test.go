package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/testproc"
)

// cli runs `scopegate args...` in-process and returns its exit code and
// output.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// mustCLI runs a command that must succeed and returns its stdout.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, args...)
	if code != exitOK {
		t.Fatalf("scopegate %s = %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// jwtCLIRoutes is the routes file of the newcomer's walk-through.
const jwtCLIRoutes = `
default: deny
routes:
  - path: /api/sites/{site}/inventory/**
    module: inventory
    scope: site:{site}
`

// TestJWTUserFromCLIOnly walks a newcomer's path on an empty database with
// CLI commands only: migrate, add a company, a site, a module and a user,
// grant the user view on the site; then the real serve allows that user's
// JWT on the site, refuses it on another site, and refuses it after the
// grant is removed (within the change feed's second).
func TestJWTUserFromCLIOnly(t *testing.T) {
	clearScopegateEnv(t)
	dsn := pgtest.NewEmptyDB(t)
	t.Setenv("SCOPEGATE_DATABASE_URL", dsn)

	mustCLI(t, "migrate")
	mustCLI(t, "companies", "add", "acme", "--name", "Acme")
	mustCLI(t, "sites", "add", "acme-paris", "--company", "acme", "--name", "Paris")
	mustCLI(t, "sites", "add", "--company", "acme", "--name", "Lyon", "acme-lyon") // flags before the key
	mustCLI(t, "modules", "add", "inventory", "--name", "Inventory")
	userID := strings.TrimSpace(mustCLI(t, "users", "add", "--sub", "alice", "--email", "alice@example.com"))
	mustCLI(t, "grants", "add", "--user", "alice", "--module", "inventory", "--action", "view", "--site", "acme-paris")

	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(jwtCLIRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, map[string]string{
		"SCOPEGATE_DATABASE_URL":     dsn,
		"SCOPEGATE_ROUTES_FILE":      routes,
		"SCOPEGATE_JWT_HS256_SECRET": paritySecret,
	})
	tok := parityJWT(t, "alice", "")
	get := func(path string) (int, string) {
		t.Helper()
		return httpGet(t, g.base+path, "Authorization", "Bearer "+tok)
	}
	if code, body := get("/api/sites/acme-paris/inventory/items"); code != http.StatusOK {
		t.Fatalf("granted site: %d %s, want 200", code, body)
	}
	if code, body := get("/api/sites/acme-lyon/inventory/items"); code != http.StatusForbidden || !strings.Contains(body, `"permission_denied"`) {
		t.Errorf("other site: %d %s, want 403 permission_denied", code, body)
	}

	// users show names the grant; grants list --json has it with the user.
	show := mustCLI(t, "users", "show", "alice")
	for _, want := range []string{userID, "alice@example.com", "inventory", "view", "site:acme-paris", "user_scope_permissions"} {
		if !strings.Contains(show, want) {
			t.Errorf("users show lacks %q:\n%s", want, show)
		}
	}
	var grants []grantRow
	if err := json.Unmarshal([]byte(mustCLI(t, "grants", "list", "--json", "--user", userID)), &grants); err != nil {
		t.Fatal(err)
	}
	if len(grants) != 1 || grants[0].User != "alice" || grants[0].Scope != "acme-paris" || grants[0].ScopeType != "site" || grants[0].Action != "view" {
		t.Errorf("grants list --json = %+v, want alice's one site grant", grants)
	}

	mustCLI(t, "grants", "remove", "--user", "alice", "--module", "inventory", "--action", "view", "--site", "acme-paris")
	waitFor(t, "the removed grant to be refused", func() bool {
		code, body := get("/api/sites/acme-paris/inventory/items")
		return code == http.StatusForbidden && strings.Contains(body, `"permission_denied"`)
	})

	// A company grant covers the company's sites; a deactivated module
	// stops it.
	mustCLI(t, "grants", "add", "--user", "alice", "--module", "inventory", "--action", "view", "--company", "acme")
	waitFor(t, "the company grant to allow a site", func() bool {
		code, _ := get("/api/sites/acme-lyon/inventory/items")
		return code == http.StatusOK
	})
	mustCLI(t, "modules", "deactivate", "inventory")
	waitFor(t, "the deactivated module to be refused", func() bool {
		code, body := get("/api/sites/acme-lyon/inventory/items")
		return code == http.StatusForbidden && strings.Contains(body, `"module_inactive"`)
	})
}

// waitFor polls cond until it holds, failing after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testproc.WaitFor(t, 5*time.Second, what, cond)
}

// TestDirectoryCommands checks the messages and rows of the module, company,
// site, user and grant commands, error paths included.
func TestDirectoryCommands(t *testing.T) {
	clearScopegateEnv(t)
	keysDB(t)
	mustCLI(t, "companies", "add", "acme", "--name", "Acme")
	mustCLI(t, "modules", "add", "billing", "--name", "Billing")
	mustCLI(t, "sites", "add", "hq", "--company", "acme", "--name", "HQ")
	mustCLI(t, "users", "add", "--sub", "bob")

	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"modules", "add", "billing", "--name", "Again"}, exitFail, `module_key "billing" already exists`},
		{[]string{"modules", "add", "x"}, exitConfig, "--name is required"},
		{[]string{"modules", "add", "--name", "x"}, exitConfig, "missing argument"},
		{[]string{"modules", "add", "a b", "--name", "x"}, exitConfig, "is not a key"},
		{[]string{"modules", "frob"}, exitConfig, `unknown modules command "frob"`},
		{[]string{"sites", "add", "s2", "--name", "S"}, exitConfig, "--company is required"},
		{[]string{"sites", "add", "s2", "--name", "S", "--company", "ghost"}, exitFail, `no company with company_key or id "ghost"`},
		{[]string{"companies", "deactivate", "ghost"}, exitFail, `no company with company_key "ghost"`},
		{[]string{"users", "add", "--sub", "bob"}, exitFail, `authentik_sub "bob" already exists`},
		{[]string{"users", "add"}, exitConfig, "is not a key"},
		{[]string{"users", "show", "ghost"}, exitFail, `no user with authentik_sub or id "ghost"`},
		{[]string{"grants", "add", "--user", "bob", "--module", "billing", "--action", "view"}, exitConfig, "exactly one of --company and --site"},
		{[]string{"grants", "add", "--user", "bob", "--module", "billing", "--action", "read", "--site", "hq"}, exitConfig, `--action "read" is not one of view, create, update, delete, manage`},
		{[]string{"grants", "add", "--user", "bob", "--module", "ghost", "--action", "view", "--site", "hq"}, exitFail, `no module with module_key or id "ghost"`},
		{[]string{"grants", "add", "--user", "ghost", "--module", "billing", "--action", "view", "--site", "hq"}, exitFail, `no user with authentik_sub or id "ghost"`},
		{[]string{"grants", "remove", "--user", "bob", "--module", "billing", "--action", "view", "--site", "hq"}, exitFail, "no grant view on billing"},
	}
	for _, tc := range tests {
		code, out, errOut := cli(t, tc.args...)
		if code != tc.code || out != "" || !strings.Contains(errOut, tc.stderr) {
			t.Errorf("scopegate %q = %d, stdout %q, stderr %q; want %d, nothing, containing %q", tc.args, code, out, errOut, tc.code, tc.stderr)
		}
	}

	// A second add of the same grant and a second deactivate say so.
	mustCLI(t, "grants", "add", "--user", "bob", "--module", "billing", "--action", "manage", "--company", "acme")
	if code, out, errOut := cli(t, "grants", "add", "--user", "bob", "--module", "billing", "--action", "manage", "--company", "acme"); code != exitOK || out != "" || !strings.Contains(errOut, "already exists") {
		t.Errorf("second grants add = %d, %q, %q; want 0, nothing, already exists", code, out, errOut)
	}
	mustCLI(t, "companies", "deactivate", "acme")
	if _, _, errOut := cli(t, "companies", "deactivate", "acme"); !strings.Contains(errOut, "already inactive") {
		t.Errorf("second deactivate: stderr %q, want already inactive", errOut)
	}

	var sites []directoryRow
	if err := json.Unmarshal([]byte(mustCLI(t, "sites", "list", "--json")), &sites); err != nil {
		t.Fatal(err)
	}
	if len(sites) != 1 || sites[0].Key != "hq" || sites[0].Company != "acme" || sites[0].Status != "active" {
		t.Errorf("sites list --json = %+v", sites)
	}
	lines := strings.Split(strings.TrimSpace(mustCLI(t, "companies", "list")), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[1])[:3], " ") != "acme Acme inactive" {
		t.Errorf("companies list = %q", lines)
	}
	var users []userRow
	if err := json.Unmarshal([]byte(mustCLI(t, "users", "list", "--json")), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Sub != "bob" || users[0].Status != "active" || !users[0].IsActive || users[0].Email != nil {
		t.Errorf("users list --json = %+v", users)
	}
}

// TestUnmigratedDatabaseHint: every database command on a database without
// the schema says to run `scopegate migrate`, never PostgreSQL's raw
// "relation ... does not exist"; nor do serve and explain.
func TestUnmigratedDatabaseHint(t *testing.T) {
	clearScopegateEnv(t)
	t.Setenv("SCOPEGATE_DATABASE_URL", pgtest.NewEmptyDB(t))
	t.Setenv("SCOPEGATE_LISTEN_ADDR", "127.0.0.1:0")
	t.Setenv("SCOPEGATE_ADMIN_ADDR", "127.0.0.1:0")
	for _, args := range [][]string{
		{"keys", "list"}, {"keys", "show", "k"}, {"keys", "revoke", "k"}, {"keys", "create", "--client-key", "k", "--name", "n"},
		{"users", "list"}, {"users", "show", "u"}, {"grants", "list"}, {"modules", "list"},
		{"companies", "add", "c", "--name", "C"}, {"sites", "list"},
		{"grants", "add", "--user", "u", "--module", "m", "--action", "view", "--site", "s"},
		{"serve"}, {"explain", "GET", "/"},
	} {
		code, out, errOut := cli(t, args...)
		if code != exitFail || out != "" || !strings.Contains(errOut, "run `scopegate migrate` first") || strings.Contains(errOut, "does not exist") {
			t.Errorf("scopegate %q on an empty database = %d, %q, %q; want 1 and the migrate hint", args, code, out, errOut)
		}
	}
}
