//go:build !race

package policy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

var (
	sinkDecision Decision
	sinkCred     Credential
	sinkAddr     netip.Addr
)

// TestDecideNoAllocs keeps the hot paths allocation-free: credential
// parsing, Match (with and without escapes), the API-key decision (SHA-256
// and cached bcrypt), ClientIP, and the cached JWT decision.
func TestDecideNoAllocs(t *testing.T) {
	bc, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	sha := mustClient(t, benchClientRecord(sha256Hex("s3cret")))
	slow := mustClient(t, benchClientRecord(string(bc)))
	e := mustEngine(t, EngineConfig{
		Routes:         mustRoutes(t, specRoutes+"  - path: /api/**\n    auth: [api_key]\n"),
		JWT:            JWTConfig{Keys: fixture.keys},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	apiReq := benchAPIKeyRequest("bench.s3cret")
	escReq := benchAPIKeyRequest("bench.s3cret")
	escReq.RawPath = "/api/v2/orders/%34%32/lines/7"

	u, dir := benchUserAndDir()
	tok := sign(t, jwt.SigningMethodRS256, "rsa", fixture.rsa, jwt.MapClaims{"sub": "alice", "exp": t0.Add(time.Hour).Unix()})
	jwtReq := &Request{Method: "GET", RawPath: "/api/companies/co77/sites/s77-3/items", Now: t0,
		Cred: ParseCredential(CredentialHeaders{Authorization: "Bearer " + tok})}
	decideJWT(t, e, jwtReq, u, dir) // warm the token cache

	authz := "Bearer " + tok
	tests := []struct {
		name string
		f    func()
	}{
		{"ParseCredential jwt", func() { sinkCred = ParseCredential(CredentialHeaders{Authorization: authz}) }},
		{"ParseCredential api key", func() { sinkCred = ParseCredential(CredentialHeaders{APIKey: "bench.s3cret"}) }},
		{"api key sha256", func() {
			m, _ := e.Match(apiReq)
			sinkDecision = e.AuthorizeClient(apiReq, &m, sha)
		}},
		{"api key bcrypt cached", func() {
			m, _ := e.Match(apiReq)
			sinkDecision = e.AuthorizeClient(apiReq, &m, slow)
		}},
		{"api key escaped path with scratch", func() {
			m, _ := e.Match(escReq)
			sinkDecision = e.AuthorizeClient(escReq, &m, sha)
		}},
		{"client ip", func() {
			sinkAddr, _ = e.ClientIP(netip.MustParseAddr("127.0.0.1"), "203.0.113.5, 10.0.0.1", "")
		}},
		{"jwt cached", func() { decideJWT(t, e, jwtReq, u, dir) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f()
			if n := testing.AllocsPerRun(200, tt.f); n != 0 {
				t.Errorf("%s allocates %v times per run, want 0", tt.name, n)
			}
		})
	}
}
