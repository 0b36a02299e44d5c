package store_test

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

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
