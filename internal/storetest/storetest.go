// Package storetest holds store fixtures that can be written both as a
// declarative store file and as SQL inserts, so one decision table can run
// against the file store and PostgreSQL.
package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/scopegate/scopegate/policy"
)

// Grant is one user_scope_permissions row named by keys: exactly one of
// Company and Site is set.
type Grant struct {
	User    string // authentik_sub
	Module  string // module_key
	Action  string
	Company string // company_key
	Site    string // site_key
}

// Fixture is a set of rows. Every row has its id set, so both stores report
// the same ids. Secrets maps a client_key to the plain secret whose hash the
// client holds (for building tokens in tests); it is never written out.
type Fixture struct {
	Companies []policy.CompanyRecord
	Modules   []policy.ModuleRecord
	Sites     []policy.SiteRecord
	Users     []policy.UserRecord
	Clients   []policy.ClientRecord
	Grants    []Grant
	Secrets   map[string]string
}

// Token returns the API key token <client_key>.<secret> of a fixture client.
func (f Fixture) Token(clientKey string) string {
	return clientKey + "." + f.Secrets[clientKey]
}

// HashSecret returns the stored form of a secret: sha256:<hex>.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func intp(n int) *int { return &n }

// Basic returns a small fixture covering each kind of row and status:
// companies acme (active) and globex (inactive); modules inventory, billing
// (active) and legacy (inactive); sites acme-hq and acme-depot of acme,
// globex-lab of globex; users alice (grants), bob (inactive), carol (no
// grants); clients app (active, GET /api/** from anywhere), limited (rate
// limit 2), office (10.0.0.0/8 only, one origin), suspended, revoked and
// expired.
func Basic() Fixture {
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	f := Fixture{
		Companies: []policy.CompanyRecord{
			{ID: "11111111-0000-4000-8000-000000000001", Key: "acme", Status: "active"},
			{ID: "11111111-0000-4000-8000-000000000002", Key: "globex", Status: "inactive"},
		},
		Modules: []policy.ModuleRecord{
			{ID: "22222222-0000-4000-8000-000000000001", Key: "inventory", Status: "active"},
			{ID: "22222222-0000-4000-8000-000000000002", Key: "billing", Status: "active"},
			{ID: "22222222-0000-4000-8000-000000000003", Key: "legacy", Status: "inactive"},
		},
		Sites: []policy.SiteRecord{
			{ID: "33333333-0000-4000-8000-000000000001", Key: "acme-hq", CompanyID: "11111111-0000-4000-8000-000000000001", Status: "active"},
			{ID: "33333333-0000-4000-8000-000000000002", Key: "acme-depot", CompanyID: "11111111-0000-4000-8000-000000000001", Status: "inactive"},
			{ID: "33333333-0000-4000-8000-000000000003", Key: "globex-lab", CompanyID: "11111111-0000-4000-8000-000000000002", Status: "active"},
		},
		Users: []policy.UserRecord{
			{ID: "44444444-0000-4000-8000-000000000001", Sub: "alice", Email: "alice@example.com", DisplayName: "Alice", Status: "active", IsActive: true},
			{ID: "44444444-0000-4000-8000-000000000002", Sub: "bob", Email: "bob@example.com", DisplayName: "Bob", Status: "active", IsActive: false},
			{ID: "44444444-0000-4000-8000-000000000003", Sub: "carol", Status: "active", IsActive: true},
		},
		Grants: []Grant{
			{User: "alice", Module: "inventory", Action: "view", Company: "acme"},
			{User: "alice", Module: "inventory", Action: "update", Site: "acme-hq"},
			{User: "alice", Module: "billing", Action: "manage", Site: "acme-hq"},
			{User: "bob", Module: "inventory", Action: "view", Company: "acme"},
		},
		Secrets: map[string]string{},
	}
	client := func(n int, key, status string, rec policy.ClientRecord) {
		secret := "secret-of-" + key
		f.Secrets[key] = secret
		rec.ID = fmt.Sprintf("55555555-0000-4000-8000-%012d", n)
		rec.ClientKey, rec.Name, rec.Status, rec.APIKeyHash = key, "Client "+key, status, HashSecret(secret)
		for _, l := range []*[]string{&rec.AllowedOrigins, &rec.AllowedIPs, &rec.AllowedPaths} {
			if *l == nil {
				*l = []string{}
			}
		}
		f.Clients = append(f.Clients, rec)
	}
	client(1, "app", "active", policy.ClientRecord{AllowedPaths: []string{"GET /api/**"}})
	client(2, "limited", "active", policy.ClientRecord{RateLimitPerMin: intp(2)})
	client(3, "office", "active", policy.ClientRecord{AllowedIPs: []string{"10.0.0.0/8"}, AllowedOrigins: []string{"https://app.example.com"}, ExpiresAt: &future})
	client(4, "suspended", "suspended", policy.ClientRecord{})
	client(5, "revoked", "revoked", policy.ClientRecord{})
	client(6, "expired", "active", policy.ClientRecord{ExpiresAt: &past})
	return f
}

// YAML returns the fixture as a declarative store file.
func (f Fixture) YAML() []byte {
	type m = map[string]any
	var companies, modules, sites, users, clients, grants []m
	for _, c := range f.Companies {
		companies = append(companies, m{"id": c.ID, "company_key": c.Key, "status": c.Status})
	}
	for _, x := range f.Modules {
		modules = append(modules, m{"id": x.ID, "module_key": x.Key, "status": x.Status})
	}
	for _, s := range f.Sites {
		sites = append(sites, m{"id": s.ID, "site_key": s.Key, "company": s.CompanyID, "status": s.Status})
	}
	for _, u := range f.Users {
		row := m{"id": u.ID, "authentik_sub": u.Sub, "status": u.Status, "is_active": u.IsActive}
		if u.Email != "" {
			row["email"] = u.Email
		}
		if u.DisplayName != "" {
			row["display_name"] = u.DisplayName
		}
		users = append(users, row)
	}
	for _, c := range f.Clients {
		row := m{
			"id": c.ID, "client_key": c.ClientKey, "name": c.Name, "status": c.Status, "api_key_hash": c.APIKeyHash,
			"allowed_origins": nonNil(c.AllowedOrigins), "allowed_ips": nonNil(c.AllowedIPs), "allowed_paths": nonNil(c.AllowedPaths),
		}
		if c.RateLimitPerMin != nil {
			row["rate_limit_per_min"] = *c.RateLimitPerMin
		}
		if c.ExpiresAt != nil {
			row["expires_at"] = c.ExpiresAt.UTC().Format(time.RFC3339Nano)
		}
		clients = append(clients, row)
	}
	for _, g := range f.Grants {
		row := m{"user": g.User, "module": g.Module, "action": g.Action}
		if g.Company != "" {
			row["company"] = g.Company
		} else {
			row["site"] = g.Site
		}
		grants = append(grants, row)
	}
	out, err := yaml.Marshal(m{
		"companies": companies, "modules": modules, "sites": sites,
		"users": users, "api_clients": clients, "grants": grants,
	})
	if err != nil {
		panic(err) // plain maps and strings always marshal
	}
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// Table is the rows of one table of a migrated database: each row holds one
// value per column of Cols, as a string, bool, int32, time.Time or nil
// (NULL); JSON columns hold their text.
type Table struct {
	Name string
	Cols []string
	Rows [][]any
}

// Tables returns the fixture as the rows of each table, parents before
// children. Grants name their rows by key; they are resolved to the
// fixture's ids here. SQL writes these rows as INSERT statements, and the
// benchmark bulk-loads them with COPY.
func (f Fixture) Tables() []Table {
	null := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	ids := map[string]string{} // "company:acme" -> id
	var tables []*Table        // each its own, so a *Table stays valid as more are added
	add := func(name string, cols ...string) *Table {
		t := &Table{Name: name, Cols: cols}
		tables = append(tables, t)
		return t
	}
	t := add("companies", "id", "company_key", "name", "status")
	for _, c := range f.Companies {
		ids["company:"+c.Key] = c.ID
		t.Rows = append(t.Rows, []any{c.ID, c.Key, c.Key, c.Status})
	}
	t = add("modules", "id", "module_key", "name", "status")
	for _, m := range f.Modules {
		ids["module:"+m.Key] = m.ID
		t.Rows = append(t.Rows, []any{m.ID, m.Key, m.Key, m.Status})
	}
	t = add("sites", "id", "site_key", "company_id", "name", "status")
	for _, x := range f.Sites {
		ids["site:"+x.Key] = x.ID
		t.Rows = append(t.Rows, []any{x.ID, x.Key, x.CompanyID, x.Key, x.Status})
	}
	t = add("users", "id", "authentik_sub", "email", "display_name", "status", "is_active")
	for _, u := range f.Users {
		ids["user:"+u.Sub] = u.ID
		t.Rows = append(t.Rows, []any{u.ID, u.Sub, null(u.Email), null(u.DisplayName), u.Status, u.IsActive})
	}
	t = add("api_clients", "id", "client_key", "name", "status", "api_key_hash",
		"allowed_origins", "allowed_ips", "allowed_paths", "rate_limit_per_min", "expires_at", "last_used_at")
	for _, c := range f.Clients {
		var rate, exp, used any
		if c.RateLimitPerMin != nil {
			rate = int32(*c.RateLimitPerMin)
		}
		if c.ExpiresAt != nil {
			exp = c.ExpiresAt.UTC()
		}
		if c.LastUsedAt != nil { // PostgreSQL only: the file store keeps it in memory
			used = c.LastUsedAt.UTC()
		}
		t.Rows = append(t.Rows, []any{c.ID, c.ClientKey, c.Name, c.Status, c.APIKeyHash,
			jsonText(c.AllowedOrigins), jsonText(c.AllowedIPs), jsonText(c.AllowedPaths), rate, exp, used})
	}
	t = add("user_scope_permissions", "user_id", "module_id", "action", "scope_type", "company_id", "site_id")
	for _, g := range f.Grants {
		scope, company, site := "company", any(ids["company:"+g.Company]), any(nil)
		if g.Site != "" {
			scope, company, site = "site", nil, ids["site:"+g.Site]
		}
		t.Rows = append(t.Rows, []any{ids["user:"+g.User], ids["module:"+g.Module], g.Action, scope, company, site})
	}
	out := make([]Table, len(tables))
	for i, t := range tables {
		out[i] = *t
	}
	return out
}

// SQL returns the fixture (Tables) as INSERT statements, one string of
// several statements, for a migrated database.
func (f Fixture) SQL() string {
	var b strings.Builder
	for _, t := range f.Tables() {
		for _, row := range t.Rows {
			fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES (", t.Name, strings.Join(t.Cols, ", "))
			for i, v := range row {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(sqlLiteral(v))
			}
			b.WriteString(");\n")
		}
	}
	return b.String()
}

// sqlLiteral writes one Tables value as a SQL literal.
func sqlLiteral(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return q(v)
	case bool, int32:
		return fmt.Sprint(v)
	case time.Time:
		return q(v.Format(time.RFC3339Nano))
	}
	panic(fmt.Sprintf("storetest: no SQL literal for %T", v))
}

// q quotes a SQL string literal.
func q(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// jsonText is l as a JSON array ("[]" for nil).
func jsonText(l []string) string {
	b, _ := json.Marshal(nonNil(l))
	return string(b)
}
