package policy

import (
	"testing"
)

func testDirectory() *Directory {
	return NewDirectory(
		[]ModuleRecord{
			{ID: "m-inv", Key: "inventory", Status: "active"},
			{ID: "m-bill", Key: "billing", Status: "active"},
			{ID: "m-stock", Key: "stock", Status: "inactive"},
			{ID: "m-rep", Key: "reports", Status: "active"},
		},
		[]CompanyRecord{
			{ID: "c-acme", Key: "acme", Status: "active"},
			{ID: "c-globex", Key: "globex", Status: "active"},
			{ID: "c-dead", Key: "dead", Status: "inactive"},
		},
		[]SiteRecord{
			{ID: "s-paris", Key: "paris", CompanyID: "c-acme", Status: "active"},
			{ID: "s-lyon", Key: "lyon", CompanyID: "c-acme", Status: "active"},
			{ID: "s-closed", Key: "closed", CompanyID: "c-acme", Status: "inactive"},
			{ID: "s-berlin", Key: "berlin", CompanyID: "c-globex", Status: "active"},
			{ID: "s-ghost", Key: "ghost", CompanyID: "c-dead", Status: "active"},
		},
	)
}

func testUsers(dir *Directory) map[string]*User {
	active := func(id string) UserRecord {
		return UserRecord{ID: "u-" + id, Sub: id, Email: id + "@example.com", Status: "active", IsActive: true}
	}
	return map[string]*User{
		"viewer": CompileUser(active("viewer"), []GrantRecord{
			{Module: "inventory", Action: "view", ScopeType: "site", ScopeID: "s-paris"},
			{Module: "billing", Action: "view", ScopeType: "company", ScopeID: "c-acme"},
			{Module: "inventory", Action: "view", ScopeType: "site", ScopeID: "s-closed"},
			{Module: "inventory", Action: "view", ScopeType: "site", ScopeID: "s-ghost"},
		}, dir),
		"companyadmin": CompileUser(active("companyadmin"), []GrantRecord{
			{Module: "inventory", Action: "manage", ScopeType: "company", ScopeID: "acme", Legacy: true},
		}, dir),
		"reporter": CompileUser(active("reporter"), []GrantRecord{
			{Module: "reports", Action: "view", ScopeType: "site", ScopeID: "s-berlin"},
		}, dir),
		"nogrants":  CompileUser(active("nogrants"), nil, dir),
		"suspended": CompileUser(UserRecord{ID: "u-s", Sub: "suspended", Status: "suspended", IsActive: true}, nil, dir),
		"disabled":  CompileUser(UserRecord{ID: "u-d", Sub: "disabled", Status: "active", IsActive: false}, nil, dir),
	}
}

// userReq builds a request whose JWT subject is already known (the user).
func userReq(method, raw string) *Request {
	return &Request{Method: method, RawPath: raw, Now: t0, Cred: Credential{Kind: CredentialJWT, Token: "t"}}
}

func TestAuthorizeUser(t *testing.T) {
	dir := testDirectory()
	users := testUsers(dir)
	e := mustEngine(t, EngineConfig{Routes: mustRoutes(t, specRoutes)})
	tests := []struct {
		name, user, method, path string
		vals                     values
		reason                   Reason
		status                   int
		scope                    string
	}{
		{"site grant", "viewer", "GET", "/api/companies/acme/sites/paris/items", values{}, ReasonNone, 200, "site:paris"},
		{"site by id, identity keeps the key", "viewer", "GET", "/api/companies/c-acme/sites/s-paris/items", values{}, ReasonNone, 200, "site:paris"},
		{"action from method", "viewer", "POST", "/api/companies/acme/sites/paris/items", values{}, ReasonPermissionDenied, 403, ""},
		{"other site", "viewer", "GET", "/api/companies/acme/sites/lyon/items", values{}, ReasonPermissionDenied, 403, ""},
		{"company grant covers sites", "companyadmin", "DELETE", "/api/companies/acme/sites/lyon/x", values{}, ReasonNone, 200, "site:lyon"},
		{"superuser action", "companyadmin", "PATCH", "/api/companies/acme/sites/paris", values{}, ReasonNone, 200, "site:paris"},
		{"site of another company", "companyadmin", "GET", "/api/companies/acme/sites/berlin/x", values{}, ReasonScopeUnknown, 403, ""},
		{"unknown site", "viewer", "GET", "/api/companies/acme/sites/nowhere/x", values{}, ReasonScopeUnknown, 403, ""},
		{"unknown company with known site", "viewer", "GET", "/api/companies/nope/sites/paris/x", values{}, ReasonScopeUnknown, 403, ""},
		{"inactive site", "viewer", "GET", "/api/companies/acme/sites/closed/x", values{}, ReasonScopeInactive, 403, ""},
		{"site of inactive company", "viewer", "GET", "/api/companies/dead/sites/ghost/x", values{}, ReasonScopeInactive, 403, ""},
		{"company scope", "viewer", "GET", "/api/companies/acme/invoices", values{}, ReasonNone, 200, "company:acme"},
		{"company scope no grant", "viewer", "GET", "/api/companies/globex/invoices", values{}, ReasonPermissionDenied, 403, ""},
		{"company route method filter", "viewer", "POST", "/api/companies/acme/invoices", values{}, ReasonNoRoute, 403, ""},
		{"inactive company", "viewer", "GET", "/api/companies/dead/invoices", values{}, ReasonScopeInactive, 403, ""},
		{"header scope missing", "viewer", "GET", "/api/stock/1", values{}, ReasonScopeUnknown, 403, ""},
		{"header scope, module inactive", "viewer", "GET", "/api/stock/1", values{h: map[string]string{"X-Site-Key": "paris"}}, ReasonModuleInactive, 403, ""},
		{"query scope", "viewer", "GET", "/api/ledger/1", values{q: map[string]string{"company": "acme"}}, ReasonNone, 200, "company:acme"},
		{"query scope unknown", "viewer", "GET", "/api/ledger/1", values{q: map[string]string{"company": "x"}}, ReasonScopeUnknown, 403, ""},
		{"query scope repeated", "viewer", "GET", "/api/ledger/1", values{q: map[string]string{"company": "acme"}, twice: map[string]bool{"company": true}}, ReasonScopeUnknown, 403, ""},
		{"header scope repeated", "viewer", "GET", "/api/stock/1", values{h: map[string]string{"X-Site-Key": "paris"}, twice: map[string]bool{"X-Site-Key": true}}, ReasonScopeUnknown, 403, ""},
		{"scope any", "reporter", "GET", "/api/reports/q1", values{}, ReasonNone, 200, ""},
		{"scope any no grant", "viewer", "GET", "/api/reports/q1", values{}, ReasonPermissionDenied, 403, ""},
		{"route without module", "nogrants", "GET", "/api/me", values{}, ReasonNone, 200, ""},
		{"user unknown", "", "GET", "/api/me", values{}, ReasonUserUnknown, 403, ""},
		{"user suspended", "suspended", "GET", "/api/me", values{}, ReasonUserInactive, 403, ""},
		{"user is_active false", "disabled", "GET", "/api/me", values{}, ReasonUserInactive, 403, ""},
		{"unknown wins over scope", "", "GET", "/api/companies/acme/sites/nowhere/x", values{}, ReasonUserUnknown, 403, ""},
		{"jwt on api_key route", "viewer", "GET", "/api/keys-only/x", values{}, ReasonCredentialNotAccepted, 401, ""},
		{"no route", "viewer", "GET", "/nothing", values{}, ReasonNoRoute, 403, ""},
		{"public route", "", "GET", "/healthz", values{}, ReasonNone, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := userReq(tt.method, tt.path)
			req.Values = tt.vals
			m, d := e.Match(req)
			if d.Reason == ReasonNone && !m.Public {
				d = e.AuthorizeUser(req, &m, users[tt.user], dir)
			}
			if d.Reason != tt.reason || d.Status() != tt.status {
				t.Fatalf("decision(%s %s as %q) = %v/%d, want %v/%d", tt.method, tt.path, tt.user, d.Reason, d.Status(), tt.reason, tt.status)
			}
			got := ""
			if d.Identity.ScopeKind != "" {
				got = d.Identity.ScopeKind + ":" + d.Identity.ScopeKey
			}
			if got != tt.scope {
				t.Errorf("scope = %q, want %q", got, tt.scope)
			}
			if d.Allowed() && !m.Public && (d.Identity.Type != CredentialJWT || d.Identity.UserSub != tt.user) {
				t.Errorf("identity = %+v", d.Identity)
			}
		})
	}
}

func TestAuthorizeUserModuleUnknown(t *testing.T) {
	dir := testDirectory()
	users := testUsers(dir)
	r := mustRoutes(t, "routes:\n  - path: /crm/{company}/**\n    module: crm\n    scope: company:{company}\n")
	e := mustEngine(t, EngineConfig{Routes: r})
	req := userReq("GET", "/crm/acme/x")
	m, _ := e.Match(req)
	if d := e.AuthorizeUser(req, &m, users["viewer"], dir); d.Reason != ReasonModuleUnknown {
		t.Errorf("reason = %v, want module_unknown", d.Reason)
	}
	// Scope is checked before the module.
	req = userReq("GET", "/crm/nope/x")
	m, _ = e.Match(req)
	if d := e.AuthorizeUser(req, &m, users["viewer"], dir); d.Reason != ReasonScopeUnknown {
		t.Errorf("reason = %v, want scope_unknown", d.Reason)
	}
}

func TestMatchModes(t *testing.T) {
	dir := testDirectory()
	users := testUsers(dir)
	clients := testClients(t)
	authn := mustRoutes(t, "default: authenticated\nroutes:\n  - path: /open\n    auth: none\n  - path: /files/{name}/**\n    allow_encoded_slash: true\n")
	deny := mustRoutes(t, specRoutes)
	tests := []struct {
		name   string
		routes *Routes
		req    *Request
		user   string
		reason Reason
	}{
		{"no routes: jwt user passes", nil, userReq("GET", "/anything"), "nogrants", ReasonNone},
		{"no routes: unknown user", nil, userReq("GET", "/anything"), "", ReasonUserUnknown},
		{"no routes: api key passes", nil, apiReq("GET", "/anything", "plain.good"), "", ReasonNone},
		{"no routes: credentials missing", nil, apiReq("GET", "/anything", ""), "", ReasonCredentialsMissing},
		{"authenticated default: user", authn, userReq("GET", "/x"), "nogrants", ReasonNone},
		{"authenticated default: inactive user", authn, userReq("GET", "/x"), "suspended", ReasonUserInactive},
		{"authenticated default: missing", authn, apiReq("GET", "/x", ""), "", ReasonCredentialsMissing},
		{"public route ignores bad credentials", authn, apiReq("GET", "/open", "plain.bad"), "", ReasonNone},
		{"deny default: no_route before credentials", deny, apiReq("GET", "/x", ""), "", ReasonNoRoute},
		{"route needs credential", deny, apiReq("GET", "/api/me", ""), "", ReasonCredentialsMissing},
		{"api key on jwt-only route, before verification", deny, apiReq("GET", "/api/me", "nobody.bad"), "", ReasonCredentialNotAccepted},
		{"api key on module route uses its own paths", deny, apiReq("GET", "/api/companies/acme/invoices", "plain.good"), "", ReasonNone},
		{"encoded slash on allowing route", authn, apiReq("GET", "/files/a%2Fb/c", "plain.good"), "", ReasonNone},
		{"encoded slash, lower case", authn, apiReq("GET", "/files/a%2fb", "plain.good"), "", ReasonNone},
		{"encoded slash on other route", deny, apiReq("GET", "/api/companies/acme%2Fx/invoices", "plain.good"), "", ReasonPathInvalid},
		{"encoded slash with no route", authn, apiReq("GET", "/other/a%2Fb", "plain.good"), "", ReasonPathInvalid},
		{"encoded slash plus dot-dot", authn, apiReq("GET", "/files/a%2Fb/../c", "plain.good"), "", ReasonPathInvalid},
		{"encoded slash is not a separator", deny, apiReq("GET", "/files%2Fx/y", "plain.good"), "", ReasonPathInvalid},
		{"path invalid before everything", deny, apiReq("GET", "//healthz", ""), "", ReasonPathInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEngine(t, EngineConfig{Routes: tt.routes})
			m, d := e.Match(tt.req)
			if d.Reason == ReasonNone && !m.Public {
				if tt.req.Cred.Kind == CredentialJWT {
					d = e.AuthorizeUser(tt.req, &m, users[tt.user], dir)
				} else {
					d = e.AuthorizeClient(tt.req, &m, clients[tt.req.Cred.ClientKey])
				}
			}
			if d.Reason != tt.reason || d.Allowed() != (tt.reason == ReasonNone) {
				t.Errorf("decision = %v (allowed %v), want %v", d.Reason, d.Allowed(), tt.reason)
			}
		})
	}
	// Placeholder values keep %2F as text on allow_encoded_slash routes.
	e := mustEngine(t, EngineConfig{Routes: authn})
	m, _ := e.Match(apiReq("GET", "/files/a%2Fb/c", "plain.good"))
	if m.Path != "/files/a%2Fb/c" || m.Route != 1 {
		t.Errorf("Match = %+v", m)
	}
}

func TestSetRoutesSwaps(t *testing.T) {
	e := mustEngine(t, EngineConfig{})
	req := apiReq("GET", "/x", "plain.good")
	if _, d := e.Match(req); d.Reason != ReasonNone {
		t.Fatalf("no routes: %v", d.Reason)
	}
	e.SetRoutes(mustRoutes(t, "routes: []\n"))
	if _, d := e.Match(req); d.Reason != ReasonNoRoute {
		t.Fatalf("after SetRoutes: %v", d.Reason)
	}
	e.SetRoutes(nil)
	if _, d := e.Match(req); d.Reason != ReasonNone || e.Routes() != nil {
		t.Fatalf("after SetRoutes(nil): %v", d.Reason)
	}
}

func TestActionMappingAndSuperuser(t *testing.T) {
	dir := testDirectory()
	u := CompileUser(UserRecord{ID: "u", Sub: "s", Status: "active", IsActive: true}, []GrantRecord{
		{Module: "inventory", Action: "manage", ScopeType: "site", ScopeID: "s-paris"},
		{Module: "inventory", Action: "audit", ScopeType: "site", ScopeID: "s-lyon"},
	}, dir)
	tests := []struct {
		name, routes, method, path string
		reason                     Reason
	}{
		{"default superuser manage", "routes:\n  - path: /i/{site}\n    module: inventory\n    scope: site:{site}\n", "DELETE", "/i/paris", ReasonNone},
		{"superuser disabled", "superuser_actions: []\nroutes:\n  - path: /i/{site}\n    module: inventory\n    scope: site:{site}\n", "DELETE", "/i/paris", ReasonPermissionDenied},
		{"custom mapping", "action_by_method: {GET: audit}\nsuperuser_actions: []\nroutes:\n  - path: /i/{site}\n    module: inventory\n    scope: site:{site}\n", "GET", "/i/lyon", ReasonNone},
		{"unmapped method", "action_by_method: {GET: audit}\nsuperuser_actions: []\nroutes:\n  - path: /i/{site}\n    module: inventory\n    scope: site:{site}\n", "POST", "/i/lyon", ReasonPermissionDenied},
		{"explicit action", "superuser_actions: []\nroutes:\n  - path: /i/{site}\n    module: inventory\n    action: audit\n    scope: site:{site}\n", "DELETE", "/i/lyon", ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEngine(t, EngineConfig{Routes: mustRoutes(t, tt.routes)})
			req := userReq(tt.method, tt.path)
			m, d := e.Match(req)
			if d.Reason == ReasonNone {
				d = e.AuthorizeUser(req, &m, u, dir)
			}
			if d.Reason != tt.reason {
				t.Errorf("reason = %v, want %v", d.Reason, tt.reason)
			}
		})
	}
}
