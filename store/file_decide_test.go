package store_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

// TestDemoStoreDecisions runs the API-key decisions the demo promises
// (allow, 401, 403, 429) through the policy engine over the demo store file,
// without a routes file.
func TestDemoStoreDecisions(t *testing.T) {
	f := openFile(t, filepath.Join("..", "configs", "demo", "store.yaml"), store.FileConfig{NoWatch: true})
	e, err := policy.NewEngine(policy.EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	local := netip.MustParseAddr("127.0.0.1")
	decide := func(token, method, path, origin string, ip netip.Addr) policy.Reason {
		req := policy.Request{Method: method, RawPath: path, Origin: origin, ClientIP: ip, Now: now,
			Cred: policy.ParseCredential(policy.CredentialHeaders{APIKey: token})}
		m, d := e.Match(&req)
		if d.Reason != policy.ReasonNone {
			return d.Reason
		}
		c, err := f.LookupClient(req.Cred.ClientKey, now)
		if err != nil {
			t.Fatalf("LookupClient = %v", err)
		}
		d = e.AuthorizeClient(&req, &m, c)
		if d.Allowed() != (d.Reason == policy.ReasonNone) {
			t.Fatalf("decision %+v is inconsistent", d)
		}
		return d.Reason
	}
	tests := []struct {
		name, token, method, path, origin string
		ip                                netip.Addr
		want                              policy.Reason
	}{
		{"allow", "demo.demo-secret-change-me", "GET", "/api/orders/42", "", local, policy.ReasonNone},
		{"allow post", "demo.demo-secret-change-me", "POST", "/api/orders", "http://localhost:3000", local, policy.ReasonNone},
		{"wrong secret", "demo.wrong-secret", "GET", "/api/orders", "", local, policy.ReasonAPIKeyInvalid},
		{"unknown client", "nobody.demo-secret-change-me", "GET", "/api/orders", "", local, policy.ReasonAPIKeyInvalid},
		{"no credential", "", "GET", "/api/orders", "", local, policy.ReasonCredentialsMissing},
		{"revoked", "demo-revoked.demo-revoked-secret", "GET", "/api/orders", "", local, policy.ReasonAPIKeyInactive},
		{"expired", "demo-expired.demo-expired-secret", "GET", "/api/orders", "", local, policy.ReasonAPIKeyExpired},
		{"office from localhost", "demo-office.demo-office-secret", "GET", "/api/orders", "", local, policy.ReasonIPNotAllowed},
		{"office from the office", "demo-office.demo-office-secret", "GET", "/api/orders", "", netip.MustParseAddr("10.1.2.3"), policy.ReasonNone},
		{"wrong origin", "demo.demo-secret-change-me", "GET", "/api/orders", "https://evil.example", local, policy.ReasonOriginNotAllowed},
		{"wrong path", "demo.demo-secret-change-me", "GET", "/admin", "", local, policy.ReasonPathNotAllowed},
		{"wrong method", "demo.demo-secret-change-me", "DELETE", "/api/orders/42", "", local, policy.ReasonPathNotAllowed},
	}
	for _, tc := range tests {
		if got := decide(tc.token, tc.method, tc.path, tc.origin, tc.ip); got != tc.want {
			t.Errorf("%s: decision = %v, want %v", tc.name, got, tc.want)
		}
	}
	for i := 1; i <= 4; i++ {
		want := policy.ReasonNone
		if i == 4 {
			want = policy.ReasonRateLimited
		}
		if got := decide("demo-limited.demo-limited-secret", "GET", "/anything", "", local); got != want {
			t.Errorf("demo-limited request %d: decision = %v, want %v", i, got, want)
		}
	}
}

// TestDemoRoutesDecisions runs the table in the header of
// configs/demo/routes.yaml through the policy engine over the demo store:
// API keys and HS256 user JWTs, verified, looked up and authorized.
func TestDemoRoutesDecisions(t *testing.T) {
	f := openFile(t, filepath.Join("..", "configs", "demo", "store.yaml"), store.FileConfig{NoWatch: true})
	raw, err := os.ReadFile(filepath.Join("..", "configs", "demo", "routes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	routes, warnings, err := policy.ParseRoutes(raw)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("ParseRoutes(demo routes) = %v, warnings %v", err, warnings)
	}
	secret := []byte("demo-jwt-signing-secret")
	e, err := policy.NewEngine(policy.EngineConfig{Routes: routes, JWT: policy.JWTConfig{HS256Secret: secret, Algorithms: []string{"HS256"}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	jwtFor := func(sub string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": now.Add(time.Hour).Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	decide := func(apiKey, authorization, method, path string) policy.Reason {
		t.Helper()
		req := policy.Request{Method: method, RawPath: path, ClientIP: netip.MustParseAddr("127.0.0.1"), Now: now,
			Cred: policy.ParseCredential(policy.CredentialHeaders{APIKey: apiKey, Authorization: authorization})}
		m, d := e.Match(&req)
		if d.Reason != policy.ReasonNone || m.Public {
			return d.Reason
		}
		if req.Cred.Kind == policy.CredentialAPIKey {
			c, _ := f.LookupClient(req.Cred.ClientKey, now)
			return e.AuthorizeClient(&req, &m, c).Reason
		}
		claims, d := e.VerifyToken(&req)
		if d.Reason != policy.ReasonNone {
			return d.Reason
		}
		u, _ := f.LookupUser(context.Background(), claims.Subject, now)
		dir, _ := f.Directory(now)
		return e.AuthorizeUser(&req, &m, u, dir).Reason
	}
	const key = "demo.demo-secret-change-me"
	tests := []struct {
		name, apiKey, auth, method, path string
		want                             policy.Reason
	}{
		{"public", "", "", "GET", "/healthz", policy.ReasonNone},
		{"key allow", key, "", "GET", "/api/orders", policy.ReasonNone},
		{"key on a module route", key, "", "GET", "/api/companies/acme/inventory/items", policy.ReasonNone},
		{"key wrong secret", "demo.wrong-secret", "", "GET", "/api/orders", policy.ReasonAPIKeyInvalid},
		{"key wrong path", key, "", "DELETE", "/api/orders/1", policy.ReasonPathNotAllowed},
		{"key on a jwt route", key, "", "GET", "/api/me", policy.ReasonCredentialNotAccepted},
		{"no route", key, "", "GET", "/admin", policy.ReasonNoRoute},
		{"no credential", "", "", "GET", "/api/orders", policy.ReasonCredentialsMissing},
		{"alice company grant", "", jwtFor("alice"), "GET", "/api/companies/acme/inventory/items", policy.ReasonNone},
		{"alice site grant", "", jwtFor("alice"), "PUT", "/api/companies/acme/sites/acme-warehouse/inventory/items/1", policy.ReasonNone},
		{"alice other site", "", jwtFor("alice"), "PUT", "/api/companies/acme/sites/acme-hq/inventory/items/1", policy.ReasonPermissionDenied},
		{"alice superuser", "", jwtFor("alice"), "DELETE", "/api/companies/acme/billing/invoices/7", policy.ReasonNone},
		{"alice inactive company", "", jwtFor("alice"), "GET", "/api/companies/globex/inventory/items", policy.ReasonScopeInactive},
		{"alice unknown company", "", jwtFor("alice"), "GET", "/api/companies/initech/inventory/items", policy.ReasonScopeUnknown},
		{"alice site of another company", "", jwtFor("alice"), "GET", "/api/companies/acme/sites/globex-lab/inventory/items", policy.ReasonScopeUnknown},
		{"alice inactive module", "", jwtFor("alice"), "GET", "/api/reports/monthly", policy.ReasonModuleInactive},
		{"alice me", "", jwtFor("alice"), "GET", "/api/me", policy.ReasonNone},
		{"alice on a key-only route", "", jwtFor("alice"), "GET", "/api/orders", policy.ReasonCredentialNotAccepted},
		{"carol no grants", "", jwtFor("carol"), "GET", "/api/companies/acme/inventory/items", policy.ReasonPermissionDenied},
		{"bob inactive", "", jwtFor("bob"), "GET", "/api/me", policy.ReasonUserInactive},
		{"unknown user", "", jwtFor("mallory"), "GET", "/api/me", policy.ReasonUserUnknown},
		{"bad signature", "", jwtFor("alice") + "x", "GET", "/api/me", policy.ReasonTokenInvalid},
	}
	for _, tc := range tests {
		if got := decide(tc.apiKey, tc.auth, tc.method, tc.path); got != tc.want {
			t.Errorf("%s: %s %s = %v, want %v", tc.name, tc.method, tc.path, got, tc.want)
		}
	}
}
