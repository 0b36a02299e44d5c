package policy

import (
	"fmt"
	"strings"
	"testing"
)

func TestCompileClientReportsMalformedEntries(t *testing.T) {
	rec := ClientRecord{
		ID: "id1", ClientKey: "ck", Status: "active",
		APIKeyHash:      "md5:supersecrethash",
		AllowedIPs:      []string{"10.0.0.0/8", "not-an-ip"},
		AllowedOrigins:  []string{"https://a.example.com", "ftp//bad", "https://" + strings.Repeat("a", 320) + ".example"},
		AllowedPaths:    []string{"/api/**", "GET,post /x", "/a//b"},
		RateLimitPerMin: intp(-5),
	}
	c, errs := CompileClient(rec)
	if c == nil {
		t.Fatal("CompileClient returned nil")
	}
	if len(errs) != 7 {
		t.Fatalf("CompileClient errors = %d (%v), want 7", len(errs), errs)
	}
	if !strings.Contains(fmt.Sprint(errs), "allowed_origins entry \"https://aaaa") || !strings.Contains(fmt.Sprint(errs), "longer than 320 bytes") {
		t.Errorf("the over-long origin is not reported: %v", errs)
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), "supersecrethash") {
			t.Errorf("error %q leaks the hash", err)
		}
	}
	if len(c.ips) != 1 || len(c.originSet.exact) != 1 || len(c.paths.globs) != 1 {
		t.Errorf("compiled ips/origins/paths = %d/%d/%d, want 1/1/1", len(c.ips), len(c.originSet.exact), len(c.paths.globs))
	}
	if c.RateLimitPerMin != -1 || !c.Active {
		t.Errorf("RateLimitPerMin=%d Active=%v, want -1 true", c.RateLimitPerMin, c.Active)
	}
}

func TestDirectoryLookups(t *testing.T) {
	d := NewDirectory(
		[]ModuleRecord{{ID: "m1", Key: "inventory", Status: "active"}, {ID: "m2", Key: "old", Status: "inactive"}},
		[]CompanyRecord{{ID: "c1", Key: "acme", Status: "active"}, {ID: "c2", Key: "gone", Status: "inactive"}},
		[]SiteRecord{{ID: "s1", Key: "paris", CompanyID: "c1", Status: "active"}, {ID: "s2", Key: "lyon", CompanyID: "c2", Status: "active"}},
	)
	tests := []struct {
		name   string
		got    any
		active bool
	}{
		{"module by key", d.Module("inventory"), true},
		{"module by id", d.Module("m1"), true},
		{"company by key", d.Company("acme"), true},
		{"site by id", d.Site("s1"), true},
		{"site of inactive company", d.Site("lyon"), false},
		{"inactive module", d.Module("old"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var active bool
			switch v := tt.got.(type) {
			case *Module:
				active = v != nil && v.Active
			case *Company:
				active = v != nil && v.Active
			case *Site:
				active = v != nil && v.Active
			}
			if active != tt.active {
				t.Errorf("active = %v, want %v", active, tt.active)
			}
		})
	}
	if d.Site("nope") != nil || (*Directory)(nil).Company("acme") != nil {
		t.Error("unknown lookups must return nil")
	}
}

func TestCompileUserGrantIndex(t *testing.T) {
	d := NewDirectory(
		[]ModuleRecord{{ID: "m1", Key: "inventory", Status: "active"}},
		[]CompanyRecord{{ID: "c1", Key: "acme", Status: "active"}},
		[]SiteRecord{{ID: "s1", Key: "paris", CompanyID: "c1", Status: "active"}, {ID: "s2", Key: "nice", CompanyID: "c9", Status: "active"}},
	)
	u := CompileUser(UserRecord{ID: "u1", Sub: "sub1", Status: "active", IsActive: true}, []GrantRecord{
		{Module: "inventory", Action: "view", ScopeType: "site", ScopeID: "s1"},
		{Module: "m1", Action: "update", ScopeType: "company", ScopeID: "acme", Legacy: true},
		{Module: "inventory", Action: "delete", ScopeType: "site", ScopeID: "unknown-key", Legacy: true},
	}, d)
	if !u.Active {
		t.Fatal("user should be active")
	}
	site, co := d.Site("paris"), d.Company("acme")
	tests := []struct {
		name   string
		action string
		kind   scopeKind
		want   bool
	}{
		{"site grant", "view", scopeSite, true},
		{"site grant does not give company", "view", scopeCompany, false},
		{"legacy company grant by key and module id", "update", scopeCompany, true},
		{"company grant covers its site", "update", scopeSite, true},
		{"unresolvable legacy grant", "delete", scopeAny, false},
		{"any", "view", scopeAny, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := u.hasGrant("inventory", tt.action, tt.kind, co, site); got != tt.want {
				t.Errorf("hasGrant(%s) = %v, want %v", tt.action, got, tt.want)
			}
		})
	}
	if CompileUser(UserRecord{Status: "active", IsActive: false}, nil, nil).Active {
		t.Error("is_active=false user must be inactive")
	}
}
