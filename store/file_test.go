package store_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

// writeFile writes content to a fresh store file and returns its path.
func writeFile(t testing.TB, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.yaml")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceFile writes content beside path and renames it over path, as
// editors and config management tools do, so no reader sees a partial file.
func replaceFile(t testing.TB, path string, content []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func openFile(t testing.TB, path string, cfg store.FileConfig) *store.File {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f, err := store.OpenFile(path, cfg)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { f.Close(context.Background()) })
	return f
}

func TestFileLookups(t *testing.T) {
	fx := storetest.Basic()
	f := openFile(t, writeFile(t, fx.YAML()), store.FileConfig{NoWatch: true})
	now := time.Now()
	ctx := context.Background()

	clients := []struct {
		key        string
		wantID     string
		wantActive bool
		wantRate   int
		wantPaths  []string
	}{
		{"app", "55555555-0000-4000-8000-000000000001", true, -1, []string{"GET /api/**"}},
		{"limited", "55555555-0000-4000-8000-000000000002", true, 2, []string{}},
		{"suspended", "55555555-0000-4000-8000-000000000004", false, -1, []string{}},
		{"revoked", "55555555-0000-4000-8000-000000000005", false, -1, []string{}},
	}
	for _, tc := range clients {
		t.Run("client/"+tc.key, func(t *testing.T) {
			c, err := f.LookupClient(tc.key, now)
			if err != nil || c == nil {
				t.Fatalf("LookupClient(%q) = %v, %v, want a client", tc.key, c, err)
			}
			rec := c.Record()
			if c.ID != tc.wantID || c.ClientKey != tc.key || c.Active != tc.wantActive || c.RateLimitPerMin != tc.wantRate {
				t.Errorf("LookupClient(%q) = {ID %s, key %s, active %v, rate %d}, want {%s, %s, %v, %d}",
					tc.key, c.ID, c.ClientKey, c.Active, c.RateLimitPerMin, tc.wantID, tc.key, tc.wantActive, tc.wantRate)
			}
			if rec.APIKeyHash != storetest.HashSecret(fx.Secrets[tc.key]) {
				t.Errorf("LookupClient(%q).Record().APIKeyHash = %q, want the sha256 of the fixture secret", tc.key, rec.APIKeyHash)
			}
			if strings.Join(rec.AllowedPaths, "|") != strings.Join(tc.wantPaths, "|") || rec.AllowedPaths == nil {
				t.Errorf("AllowedPaths = %#v, want %#v", rec.AllowedPaths, tc.wantPaths)
			}
		})
	}
	t.Run("client/expires_at", func(t *testing.T) {
		c, _ := f.LookupClient("expired", now)
		if want := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC); !c.ExpiresAt.Equal(want) {
			t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, want)
		}
		c, _ = f.LookupClient("office", now)
		rec := c.Record()
		if rec.AllowedIPs[0] != "10.0.0.0/8" || rec.AllowedOrigins[0] != "https://app.example.com" {
			t.Errorf("office lists = %v %v", rec.AllowedIPs, rec.AllowedOrigins)
		}
	})
	t.Run("client/unknown", func(t *testing.T) {
		if c, err := f.LookupClient("nope", now); c != nil || err != nil {
			t.Errorf("LookupClient(nope) = %v, %v, want nil, nil", c, err)
		}
	})

	users := []struct {
		sub        string
		wantID     string
		wantActive bool
		wantGrants []policy.GrantRecord
	}{
		{"alice", "44444444-0000-4000-8000-000000000001", true, []policy.GrantRecord{
			{Module: "inventory", Action: "view", ScopeType: "company", ScopeID: "11111111-0000-4000-8000-000000000001"},
			{Module: "inventory", Action: "update", ScopeType: "site", ScopeID: "33333333-0000-4000-8000-000000000001"},
			{Module: "billing", Action: "manage", ScopeType: "site", ScopeID: "33333333-0000-4000-8000-000000000001"},
		}},
		{"bob", "44444444-0000-4000-8000-000000000002", false, []policy.GrantRecord{
			{Module: "inventory", Action: "view", ScopeType: "company", ScopeID: "11111111-0000-4000-8000-000000000001"},
		}},
		{"carol", "44444444-0000-4000-8000-000000000003", true, nil},
	}
	for _, tc := range users {
		t.Run("user/"+tc.sub, func(t *testing.T) {
			u, err := f.LookupUser(ctx, tc.sub, now)
			if err != nil || u == nil {
				t.Fatalf("LookupUser(%q) = %v, %v", tc.sub, u, err)
			}
			if u.ID != tc.wantID || u.Sub != tc.sub || u.Active != tc.wantActive {
				t.Errorf("LookupUser(%q) = {%s %s %v}, want {%s %s %v}", tc.sub, u.ID, u.Sub, u.Active, tc.wantID, tc.sub, tc.wantActive)
			}
			got := u.Grants()
			if len(got) != len(tc.wantGrants) {
				t.Fatalf("Grants() = %+v, want %+v", got, tc.wantGrants)
			}
			for i := range got {
				if got[i] != tc.wantGrants[i] {
					t.Errorf("Grants()[%d] = %+v, want %+v", i, got[i], tc.wantGrants[i])
				}
			}
		})
	}
	t.Run("user/unknown", func(t *testing.T) {
		if u, err := f.LookupUser(ctx, "mallory", now); u != nil || err != nil {
			t.Errorf("LookupUser(mallory) = %v, %v, want nil, nil", u, err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if d, err := f.Directory(now); d == nil || err != nil {
			t.Fatalf("Directory() = %v, %v", d, err)
		}
		data := f.Data()
		if len(data.Modules) != 3 || len(data.Companies) != 2 || len(data.Sites) != 3 {
			t.Errorf("Data() has %d modules, %d companies, %d sites; want 3, 2, 3", len(data.Modules), len(data.Companies), len(data.Sites))
		}
		if s := data.Sites[2]; s.Key != "globex-lab" || s.CompanyID != "11111111-0000-4000-8000-000000000002" || s.Status != "active" {
			t.Errorf("Sites[2] = %+v", s)
		}
		if m := data.Modules[2]; m.Key != "legacy" || m.Status != "inactive" {
			t.Errorf("Modules[2] = %+v", m)
		}
	})
	t.Run("ready", func(t *testing.T) {
		if !f.Ready(now) {
			t.Error("Ready() = false, want true")
		}
	})
}

func TestParseFileDefaults(t *testing.T) {
	const doc = `
companies:
  - company_key: acme
sites:
  - site_key: hq
    company: acme
modules:
  - module_key: inventory
users:
  - authentik_sub: alice
api_clients:
  - client_key: app
    api_key_hash: sha256:` + "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b" + `
    allowed_origins: []
    allowed_ips: []
    allowed_paths: []
grants:
  - {user: alice, module: inventory, action: view, site: hq}
`
	a, err := store.ParseFile("a.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	b, err := store.ParseFile("b.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	c := a.Clients[0]
	if c.Name != "app" || c.Status != "active" || c.RateLimitPerMin != nil || c.ExpiresAt != nil || c.AllowedIPs == nil || len(c.AllowedIPs) != 0 {
		t.Errorf("client defaults = %+v", c)
	}
	if u := a.Users[0]; u.Status != "active" || !u.IsActive || u.Email != "" {
		t.Errorf("user defaults = %+v", u)
	}
	ids := []struct{ name, a, b string }{
		{"company", a.Companies[0].ID, b.Companies[0].ID},
		{"site", a.Sites[0].ID, b.Sites[0].ID},
		{"module", a.Modules[0].ID, b.Modules[0].ID},
		{"user", a.Users[0].ID, b.Users[0].ID},
		{"client", a.Clients[0].ID, b.Clients[0].ID},
	}
	seen := map[string]bool{}
	for _, x := range ids {
		if len(x.a) != 36 || x.a[14] != '5' || x.a != x.b {
			t.Errorf("%s id = %q then %q, want one stable version 5 uuid", x.name, x.a, x.b)
		}
		if seen[x.a] {
			t.Errorf("%s id %s repeats another table's id", x.name, x.a)
		}
		seen[x.a] = true
	}
	if a.Sites[0].CompanyID != a.Companies[0].ID {
		t.Errorf("site company id = %s, want %s", a.Sites[0].CompanyID, a.Companies[0].ID)
	}
	want := policy.GrantRecord{Module: "inventory", Action: "view", ScopeType: "site", ScopeID: a.Sites[0].ID}
	if g := a.Grants[a.Users[0].ID]; len(g) != 1 || g[0] != want {
		t.Errorf("grants = %+v, want [%+v]", g, want)
	}
}

// validHash is the sha256: form of "s3cret".
const validHash = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"yaml syntax", "users:\n  - authentik_sub: a\n    email: x: y\n", 3, "invalid YAML: mapping values are not allowed"},
		{"empty file", "", 1, "empty file"},
		{"not a mapping", "- a\n", 1, "expected a mapping"},
		{"unknown section", "modules: []\nroles: []\n", 2, `unknown field "roles"`},
		{"unknown field", "modules:\n  - module_key: a\n    colour: red\n", 3, `modules[0]: unknown field "colour"`},
		{"repeated field", "modules:\n  - module_key: a\n    module_key: b\n", 3, `field "module_key" repeated`},
		{"missing key", "companies:\n  - name: Acme\n", 2, "missing company_key"},
		{"duplicate client_key", "api_clients:\n  - {client_key: a, api_key_hash: " + validHash + "}\n  - {client_key: a, api_key_hash: " + validHash + "}\n", 3, `duplicate client_key "a" (first at line 2)`},
		{"duplicate sub", "users:\n  - authentik_sub: a\n  - authentik_sub: a\n", 3, `duplicate authentik_sub "a"`},
		{"duplicate module_key", "modules:\n  - module_key: m\n  - module_key: m\n", 3, `duplicate module_key "m"`},
		{"duplicate company_key", "companies:\n  - company_key: c\n  - company_key: c\n", 3, `duplicate company_key "c"`},
		{"duplicate site_key", "companies: [{company_key: c}]\nsites:\n  - {site_key: s, company: c}\n  - {site_key: s, company: c}\n", 4, `duplicate site_key "s"`},
		{"duplicate email", "users:\n  - {authentik_sub: a, email: x@example.com}\n  - {authentik_sub: b, email: x@example.com}\n", 3, "duplicate email"},
		{"duplicate id", "modules:\n  - {id: 22222222-0000-4000-8000-000000000001, module_key: a}\n  - {id: 22222222-0000-4000-8000-000000000001, module_key: b}\n", 3, "duplicate id"},
		{"bad id", "modules:\n  - {id: 42, module_key: a}\n", 2, `id "42" is not a uuid`},
		{"site of missing company", "sites:\n  - site_key: s\n    company: nope\n", 3, `company "nope" is not a company_key or id`},
		{"bad record status", "companies:\n  - company_key: c\n    status: enabled\n", 3, `status "enabled" is not one of active, inactive`},
		{"bad client status", "api_clients:\n  - client_key: a\n    api_key_hash: " + validHash + "\n    status: inactive\n", 4, `status "inactive" is not one of active, suspended, revoked`},
		{"bad is_active", "users:\n  - authentik_sub: a\n    is_active: maybe\n", 3, "is_active: expected true or false"},
		{"bad rate", "api_clients:\n  - client_key: a\n    api_key_hash: " + validHash + "\n    rate_limit_per_min: -1\n", 4, "rate_limit_per_min"},
		{"bad expires_at", "api_clients:\n  - client_key: a\n    api_key_hash: " + validHash + "\n    expires_at: tomorrow\n", 4, "expires_at: expected an RFC 3339 time"},
		{"plain secret as hash", "api_clients:\n  - client_key: a\n    api_key_hash: hunter2hunter2\n", 3, "plain secrets are refused"},
		{"plain secret field", "api_clients:\n  - client_key: a\n    secret: hunter2hunter2\n    api_key_hash: " + validHash + "\n", 3, "never the secret"},
		{"short sha256", "api_clients:\n  - client_key: a\n    api_key_hash: sha256:abc\n", 3, "must be sha256: followed by 64 hex"},
		{"bare non-hex", "api_clients:\n  - client_key: a\n    api_key_hash: " + strings.Repeat("z", 64) + "\n", 3, "plain secrets are refused"},
		{"bad bcrypt", "api_clients:\n  - client_key: a\n    api_key_hash: $2b$10$short\n", 3, "not a valid bcrypt hash"},
		{"missing hash", "api_clients:\n  - client_key: a\n", 2, "missing api_key_hash"},
		{"list not a list", "api_clients:\n  - client_key: a\n    api_key_hash: " + validHash + "\n    allowed_ips: 10.0.0.0/8\n", 4, "allowed_ips: expected a list"},
		{"grant missing user", "modules: [{module_key: m}]\ncompanies: [{company_key: c}]\ngrants:\n  - user: ghost\n    module: m\n    action: view\n    company: c\n", 4, `user "ghost" is not an authentik_sub or id`},
		{"grant missing module", "users: [{authentik_sub: u}]\ncompanies: [{company_key: c}]\ngrants:\n  - user: u\n    module: nope\n    action: view\n    company: c\n", 5, `module "nope"`},
		{"grant missing site", "users: [{authentik_sub: u}]\nmodules: [{module_key: m}]\ngrants:\n  - user: u\n    module: m\n    action: view\n    site: nowhere\n", 7, `site "nowhere" is not a site_key or id`},
		{"grant bad action", "users: [{authentik_sub: u}]\nmodules: [{module_key: m}]\ncompanies: [{company_key: c}]\ngrants:\n  - {user: u, module: m, action: read, company: c}\n", 5, `action "read" is not one of`},
		{"grant both scopes", "users: [{authentik_sub: u}]\nmodules: [{module_key: m}]\ncompanies: [{company_key: c}]\nsites: [{site_key: s, company: c}]\ngrants:\n  - {user: u, module: m, action: view, company: c, site: s}\n", 6, "not both"},
		{"grant no scope", "users: [{authentik_sub: u}]\nmodules: [{module_key: m}]\ngrants:\n  - {user: u, module: m, action: view}\n", 4, "missing company or site"},
		{"duplicate grant", "users: [{authentik_sub: u}]\nmodules: [{module_key: m}]\ncompanies: [{company_key: c}]\ngrants:\n  - {user: u, module: m, action: view, company: c}\n  - {user: u, module: m, action: view, company: c}\n", 6, "duplicate grant (first at line 5)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := store.ParseFile("s.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("ParseFile = %+v, nil; want an error at line %d", data, tc.line)
			}
			fes := store.FileErrors(err)
			if len(fes) == 0 {
				t.Fatalf("ParseFile error %q holds no *FileError", err)
			}
			found := false
			for _, fe := range fes {
				if fe.Line == tc.line && strings.Contains(fe.Msg, tc.msg) && fe.Path == "s.yaml" {
					found = true
				}
			}
			if !found {
				t.Errorf("ParseFile error = %q, want line %d containing %q", err, tc.line, tc.msg)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ParseFile error %q echoes a secret", err)
			}
		})
	}
}

// TestParseFileBadListEntries needs policy.CompileClient to validate entries;
// it skips while the policy package accepts everything.
func TestParseFileBadListEntries(t *testing.T) {
	if _, errs := policy.CompileClient(policy.ClientRecord{AllowedIPs: []string{"not-an-ip"}}); len(errs) == 0 {
		t.Skip("policy.CompileClient does not validate entries yet")
	}
	tests := []struct {
		name, field, good, bad string
	}{
		{"bad cidr", "allowed_ips", "127.0.0.1", "10.0.0.0/33"},
		{"bad ip", "allowed_ips", "::1", "not-an-ip"},
		{"bad origin", "allowed_origins", "https://ok.example.com", "ftp://x y"},
		{"bad glob", "allowed_paths", "/ok/**", "api/no-leading-slash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := "api_clients:\n  - client_key: a\n    api_key_hash: " + validHash + "\n    " + tc.field + ":\n      - '" + tc.good + "'\n      - '" + tc.bad + "'\n"
			for _, other := range []string{"allowed_ips", "allowed_origins", "allowed_paths"} {
				if other != tc.field {
					doc += "    " + other + ": []\n"
				}
			}
			_, err := store.ParseFile("s.yaml", []byte(doc))
			fes := store.FileErrors(err)
			if len(fes) != 1 || fes[0].Line != 6 || !strings.Contains(fes[0].Msg, tc.field) || !strings.Contains(fes[0].Msg, tc.bad) {
				t.Errorf("ParseFile(%s: %q) = %v, want one error at line 6 naming %s and the entry", tc.field, tc.bad, err, tc.field)
			}
		})
	}
}

func TestFileReloadKeepsOldDataOnError(t *testing.T) {
	fx := storetest.Basic()
	path := writeFile(t, fx.YAML())
	var reports []error
	f := openFile(t, path, store.FileConfig{NoWatch: true, OnReload: func(err error) { reports = append(reports, err) }})
	now := time.Now()
	before, _ := f.LookupClient("app", now)

	replaceFile(t, path, []byte("api_clients:\n  - client_key: app\n    api_key_hash: plain-secret\n    allowed_origins: []\n    allowed_ips: []\n    allowed_paths: []\n"))
	err := f.Reload()
	if fes := store.FileErrors(err); len(fes) != 1 || fes[0].Line != 3 {
		t.Fatalf("Reload() = %v, want one error at line 3", err)
	}
	if c, _ := f.LookupClient("app", now); c != before {
		t.Errorf("after a rejected reload LookupClient(app) = %p, want the old client %p", c, before)
	}
	if u, _ := f.LookupUser(context.Background(), "alice", now); u == nil {
		t.Error("after a rejected reload alice is gone")
	}

	fx.Clients = fx.Clients[1:] // drop "app"
	fx.Clients[0].RateLimitPerMin = nil
	replaceFile(t, path, fx.YAML())
	if err := f.Reload(); err != nil {
		t.Fatalf("Reload() = %v", err)
	}
	if c, _ := f.LookupClient("app", now); c != nil {
		t.Errorf("after reload LookupClient(app) = %v, want nil", c)
	}
	if c, _ := f.LookupClient("limited", now); c == nil || c.RateLimitPerMin != -1 {
		t.Errorf("after reload LookupClient(limited) = %+v, want rate -1", c)
	}
	if len(reports) != 2 || reports[0] == nil || reports[1] != nil {
		t.Errorf("OnReload reports = %v, want [error, nil]", reports)
	}
}

func TestFileReloadKeepsUnchangedClients(t *testing.T) {
	fx := storetest.Basic()
	path := writeFile(t, fx.YAML())
	f := openFile(t, path, store.FileConfig{NoWatch: true})
	now := time.Now()
	app, _ := f.LookupClient("app", now)
	limited, _ := f.LookupClient("limited", now)

	fx.Clients[1].AllowedPaths = []string{"/x/**"}
	replaceFile(t, path, fx.YAML())
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.LookupClient("app", now); c != app {
		t.Error("unchanged client app was recompiled on reload")
	}
	if c, _ := f.LookupClient("limited", now); c == limited || c.Record().AllowedPaths[0] != "/x/**" {
		t.Errorf("changed client limited = %+v, want the new row", c.Record())
	}
}

func TestFileWatchReloads(t *testing.T) {
	fx := storetest.Basic()
	path := writeFile(t, fx.YAML())
	f, reloads := openWatched(t, path)
	now := time.Now()

	// waitFor waits up to 1s for a reload whose result satisfies ok. An
	// in-place write may first show a truncated file, which is rejected;
	// the next event brings the whole file.
	waitFor := func(what string, ok func(error) bool) {
		t.Helper()
		deadline := time.After(time.Second)
		for {
			select {
			case err := <-reloads:
				if ok(err) {
					return
				}
			case <-deadline:
				t.Fatalf("%s: not reloaded within 1s", what)
			}
		}
	}
	succeeded := func(err error) bool { return err == nil }

	fx.Clients = append(fx.Clients, policy.ClientRecord{ID: "55555555-0000-4000-8000-000000000099", ClientKey: "newcomer", Name: "n", Status: "active", APIKeyHash: validHash})
	replaceFile(t, path, fx.YAML())
	waitFor("rename over", succeeded)
	if c, _ := f.LookupClient("newcomer", now); c == nil {
		t.Fatal("client added to the file not seen after the watcher reload")
	}

	// An in-place write (truncate and write) is seen too.
	fx.Clients = fx.Clients[:len(fx.Clients)-1]
	if err := os.WriteFile(path, fx.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("in-place write", succeeded)
	if c, _ := f.LookupClient("newcomer", now); c != nil {
		t.Fatal("client removed from the file still served")
	}

	// A broken file is reported and the old data stays.
	replaceFile(t, path, []byte("api_clients: [\n"))
	waitFor("broken file", func(err error) bool { return err != nil })
	if c, _ := f.LookupClient("app", now); c == nil {
		t.Fatal("old data dropped after a broken file")
	}
}

func TestFileMarkUsed(t *testing.T) {
	fx := storetest.Basic()
	path := writeFile(t, fx.YAML())
	f := openFile(t, path, store.FileConfig{NoWatch: true})
	id := fx.Clients[0].ID
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

	if _, ok := f.LastUsed(id); ok {
		t.Fatal("LastUsed before any use reports one")
	}
	f.MarkUsed(id, t0)
	f.MarkUsed(id, t0.Add(-time.Minute)) // older: must not move it back
	if got, ok := f.LastUsed(id); !ok || !got.Equal(t0) {
		t.Errorf("LastUsed = %v, %v; want %v", got, ok, t0)
	}
	f.MarkUsed(id, t0.Add(time.Second))
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.LastUsed(id); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("LastUsed after reload = %v, want %v", got, t0.Add(time.Second))
	}
	if err := f.Close(context.Background()); err != nil {
		t.Errorf("Close = %v", err)
	}
}

func TestOpenFileErrors(t *testing.T) {
	if _, err := store.OpenFile(filepath.Join(t.TempDir(), "missing.yaml"), store.FileConfig{NoWatch: true}); err == nil {
		t.Error("OpenFile(missing) = nil error")
	}
	path := writeFile(t, []byte("grants:\n  - user: ghost\n"))
	_, err := store.OpenFile(path, store.FileConfig{NoWatch: true})
	if fes := store.FileErrors(err); len(fes) == 0 || fes[0].Path != path {
		t.Errorf("OpenFile(bad) = %v, want FileErrors naming %s", err, path)
	}
}

// TestDemoStoreFile checks that configs/demo/store.yaml loads and that the
// secrets documented in its header match the stored hashes.
func TestDemoStoreFile(t *testing.T) {
	f := openFile(t, filepath.Join("..", "configs", "demo", "store.yaml"), store.FileConfig{NoWatch: true})
	now := time.Now()
	tests := []struct {
		key, secret, status string
		rate                int
	}{
		{"demo", "demo-secret-change-me", "active", 60},
		{"demo-limited", "demo-limited-secret", "active", 3},
		{"demo-office", "demo-office-secret", "active", -1},
		{"demo-revoked", "demo-revoked-secret", "revoked", -1},
		{"demo-expired", "demo-expired-secret", "active", -1},
	}
	for _, tc := range tests {
		c, _ := f.LookupClient(tc.key, now)
		if c == nil {
			t.Errorf("demo client %q missing", tc.key)
			continue
		}
		rec := c.Record()
		if rec.APIKeyHash != storetest.HashSecret(tc.secret) || rec.Status != tc.status || c.RateLimitPerMin != tc.rate {
			t.Errorf("demo client %q = {hash %s, status %s, rate %d}, want the hash of %q, %s, %d",
				tc.key, rec.APIKeyHash, rec.Status, c.RateLimitPerMin, tc.secret, tc.status, tc.rate)
		}
	}
	if c, _ := f.LookupClient("demo-expired", now); !c.ExpiresAt.Before(now) {
		t.Errorf("demo-expired expires at %v, want the past", c.ExpiresAt)
	}
	ctx := context.Background()
	for sub, active := range map[string]bool{"alice": true, "bob": false, "carol": true} {
		u, _ := f.LookupUser(ctx, sub, now)
		if u == nil || u.Active != active {
			t.Errorf("demo user %q = %+v, want active %v", sub, u, active)
		}
	}
	if u, _ := f.LookupUser(ctx, "alice", now); len(u.Grants()) != 3 {
		t.Errorf("alice has %d grants, want 3", len(u.Grants()))
	}
}

// TestFileWatchFollowsSymlink: a store file that is a symlink into another
// directory (a mounted secret, a config checked out elsewhere) is reloaded
// when its target is edited in place, not only on SIGHUP.
func TestFileWatchFollowsSymlink(t *testing.T) {
	fx := storetest.Basic()
	target := writeFile(t, fx.YAML())
	link := filepath.Join(t.TempDir(), "store.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	f, reloads := openWatched(t, link)
	fx.Clients = fx.Clients[1:] // "app" goes
	if err := os.WriteFile(target, fx.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, f, reloads, "app", "an in-place edit of the symlink's target")
}

// TestFileWatchFollowsDirectoryLinkFlip: a store file reached through a
// symlinked directory (a release layout: current -> releases/v1) is
// reloaded when the link is flipped to another directory.
func TestFileWatchFollowsDirectoryLinkFlip(t *testing.T) {
	root := t.TempDir()
	fx := storetest.Basic()
	for _, v := range []string{"v1", "v2"} {
		if err := os.MkdirAll(filepath.Join(root, "releases", v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "releases", "v1", "store.yaml"), fx.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	fx.Clients = fx.Clients[1:] // v2 has no "app"
	if err := os.WriteFile(filepath.Join(root, "releases", "v2", "store.yaml"), fx.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("releases", "v1"), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	f, reloads := openWatched(t, filepath.Join(root, "current", "store.yaml"))
	if c, _ := f.LookupClient("app", time.Now()); c == nil {
		t.Fatal("app missing before the flip")
	}
	// Flip atomically, as deploy tools do: a new link renamed over the old.
	if err := os.Symlink(filepath.Join("releases", "v2"), filepath.Join(root, "current.new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "current.new"), filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
	waitClientGone(t, f, reloads, "app", "the flip of the directory link")
}

// openWatched opens the file store at path with a short debounce, and
// returns it with a channel of its watcher's reload results.
func openWatched(t *testing.T, path string) (*store.File, <-chan error) {
	t.Helper()
	reloads := make(chan error, 10)
	f := openFile(t, path, store.FileConfig{Debounce: 50 * time.Millisecond, OnReload: func(err error) { reloads <- err }})
	return f, reloads
}

// waitClientGone waits up to 2s, reload by reload, until f no longer
// knows client key: what changed on disk has been reloaded.
func waitClientGone(t *testing.T, f *store.File, reloads <-chan error, key, what string) {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		if c, _ := f.LookupClient(key, time.Now()); c == nil {
			return
		}
		select {
		case <-reloads:
		case <-deadline:
			t.Fatalf("%s was not reloaded within 2s", what)
		}
	}
}
