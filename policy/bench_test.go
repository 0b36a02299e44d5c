package policy

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// benchClientRecord is an API client with 10 CIDRs, 10 origins and 20 path
// globs; the benchmark request matches the last entry of each list, so every
// list is scanned whole.
func benchClientRecord(hash string) ClientRecord {
	rec := ClientRecord{ID: "c-bench", ClientKey: "bench", Status: "active", APIKeyHash: hash, RateLimitPerMin: intp(1 << 30)}
	for i := 0; i < 10; i++ {
		rec.AllowedIPs = append(rec.AllowedIPs, fmt.Sprintf("192.168.%d.0/24", i))
		rec.AllowedOrigins = append(rec.AllowedOrigins, fmt.Sprintf("https://app%d.example.com", i))
	}
	rec.AllowedIPs[9] = "2001:db8::/32"
	rec.AllowedOrigins[9] = "https://*.example.org"
	for i := 0; i < 19; i++ {
		rec.AllowedPaths = append(rec.AllowedPaths, fmt.Sprintf("GET,POST /api/v1/area%d/**", i))
	}
	rec.AllowedPaths = append(rec.AllowedPaths, "GET /api/v2/orders/*/lines/**")
	return rec
}

func benchAPIKeyRequest(token string) *Request {
	return &Request{
		Method: "GET", RawPath: "/api/v2/orders/42/lines/7", Origin: "https://shop.eu.example.org",
		ClientIP: netip.MustParseAddr("2001:db8::7"), Now: t0,
		Cred: ParseCredential(CredentialHeaders{APIKey: token}), Scratch: make([]byte, 0, 256),
	}
}

// BenchmarkDecideAPIKey is the API-key decision: Match, hash check,
// IP/origin/path lists and the token bucket.
func BenchmarkDecideAPIKey(b *testing.B) {
	bc, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	for _, bc := range []struct {
		name, hash string
	}{
		{"sha256", sha256Hex("s3cret")},
		{"bcrypt_cached", string(bc)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := mustClient(b, benchClientRecord(bc.hash))
			e := mustEngine(b, EngineConfig{Routes: mustRoutes(b, specRoutes+"  - path: /api/**\n    auth: [api_key]\n")})
			req := benchAPIKeyRequest("bench.s3cret")
			b.ReportAllocs()
			for b.Loop() {
				m, d := e.Match(req)
				if d.Reason != ReasonNone {
					b.Fatal(d.Reason)
				}
				if d = e.AuthorizeClient(req, &m, c); !d.Allowed() {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

// BenchmarkDecideAPIKeyParallel runs the sha256 decision on every core.
func BenchmarkDecideAPIKeyParallel(b *testing.B) {
	c := mustClient(b, benchClientRecord(sha256Hex("s3cret")))
	e := mustEngine(b, EngineConfig{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := benchAPIKeyRequest("bench.s3cret")
		for pb.Next() {
			m, _ := e.Match(req)
			if d := e.AuthorizeClient(req, &m, c); !d.Allowed() {
				b.Fatal(d.Reason)
			}
		}
	})
}

// benchUser has 1,000 grants spread over modules, companies and sites; the
// benchmark request needs the company grant on the site's company.
func benchUserAndDir() (*User, *Directory) {
	var mods []ModuleRecord
	var cos []CompanyRecord
	var sites []SiteRecord
	for i := 0; i < 10; i++ {
		mods = append(mods, ModuleRecord{ID: fmt.Sprintf("m%d", i), Key: fmt.Sprintf("mod%d", i), Status: "active"})
	}
	mods = append(mods, ModuleRecord{ID: "m-inv", Key: "inventory", Status: "active"})
	for i := 0; i < 100; i++ {
		cos = append(cos, CompanyRecord{ID: fmt.Sprintf("c%d", i), Key: fmt.Sprintf("co%d", i), Status: "active"})
		for j := 0; j < 5; j++ {
			sites = append(sites, SiteRecord{ID: fmt.Sprintf("s%d-%d", i, j), Key: fmt.Sprintf("site%d-%d", i, j), CompanyID: fmt.Sprintf("c%d", i), Status: "active"})
		}
	}
	dir := NewDirectory(mods, cos, sites)
	var grants []GrantRecord
	actions := []string{"view", "create", "update", "delete", "manage"}
	for i := 0; len(grants) < 999; i++ {
		g := GrantRecord{Module: fmt.Sprintf("mod%d", i%10), Action: actions[i%5], ScopeType: "site", ScopeID: fmt.Sprintf("s%d-%d", i%100, i%5)}
		if i%3 == 0 {
			g.ScopeType, g.ScopeID = "company", fmt.Sprintf("c%d", i%100)
		}
		grants = append(grants, g)
	}
	grants = append(grants, GrantRecord{Module: "inventory", Action: "view", ScopeType: "company", ScopeID: "c77"})
	u := CompileUser(UserRecord{ID: "u1", Sub: "alice", Status: "active", IsActive: true}, grants, dir)
	return u, dir
}

// BenchmarkDecideJWT is the JWT decision for a token already in the
// verified-token cache and a user with 1,000 grants.
func BenchmarkDecideJWT(b *testing.B) {
	u, dir := benchUserAndDir()
	e := mustEngine(b, EngineConfig{Routes: mustRoutes(b, specRoutes), JWT: JWTConfig{Keys: fixture.keys}})
	tok := sign(b, jwt.SigningMethodRS256, "rsa", fixture.rsa, jwt.MapClaims{"sub": "alice", "exp": t0.Add(time.Hour).Unix()})
	req := &Request{Method: "GET", RawPath: "/api/companies/co77/sites/site77-3/items/9", Now: t0,
		Cred: ParseCredential(CredentialHeaders{Authorization: "Bearer " + tok})}
	if _, d := e.VerifyToken(req); d.Reason != ReasonNone {
		b.Fatal(d.Reason)
	}
	b.ReportAllocs()
	for b.Loop() {
		decideJWT(b, e, req, u, dir)
	}
}

func decideJWT(tb testing.TB, e *Engine, req *Request, u *User, dir *Directory) {
	m, d := e.Match(req)
	if d.Reason != ReasonNone {
		tb.Fatal(d.Reason)
	}
	c, d := e.VerifyToken(req)
	if d.Reason != ReasonNone || c.Subject != u.Sub {
		tb.Fatal(d.Reason)
	}
	if d = e.AuthorizeUser(req, &m, u, dir); !d.Allowed() {
		tb.Fatal(d.Reason)
	}
}

// BenchmarkVerifyTokenFirstSeen verifies an RS256 token that is not cached
// (the cache is emptied every iteration).
func BenchmarkVerifyTokenFirstSeen(b *testing.B) {
	e := mustEngine(b, EngineConfig{JWT: JWTConfig{Keys: fixture.keys, Issuer: "https://idp", Audience: "gw"}})
	tok := sign(b, jwt.SigningMethodRS256, "rsa", fixture.rsa, claimsAt("alice", t0.Add(time.Hour)))
	req := jwtReq(tok, t0)
	b.ReportAllocs()
	for b.Loop() {
		e.jwt.cache.reset()
		if _, d := e.VerifyToken(req); d.Reason != ReasonNone {
			b.Fatal(d.Reason)
		}
	}
}

// BenchmarkNaiveGlobs is the baseline twin of the compiled path check: the
// globs are compiled on every request, as a matcher without a compile step
// would do.
func BenchmarkNaiveGlobs(b *testing.B) {
	rec := benchClientRecord("")
	b.ReportAllocs()
	for b.Loop() {
		ok := false
		for _, s := range rec.AllowedPaths {
			g, _ := compileGlob(s, false)
			ok = ok || g.match("GET", "/api/v2/orders/42/lines/7", nil)
		}
		if !ok {
			b.Fatal("no match")
		}
	}
}

// BenchmarkScreenPath screens and decodes a path with escapes.
func BenchmarkScreenPath(b *testing.B) {
	scratch := make([]byte, 0, 128)
	raw := "/api/v2/orders/%34%32/lines/caf%C3%A9"
	b.ReportAllocs()
	for b.Loop() {
		if screenPath(raw)&pathBad != 0 {
			b.Fatal("bad")
		}
		if _, ok := decodePath(raw, false, scratch); !ok {
			b.Fatal("bad")
		}
	}
}

// BenchmarkDecideJWTParallel is the cached JWT decision on every core.
func BenchmarkDecideJWTParallel(b *testing.B) {
	u, dir := benchUserAndDir()
	e := mustEngine(b, EngineConfig{Routes: mustRoutes(b, specRoutes), JWT: JWTConfig{Keys: fixture.keys}})
	tok := sign(b, jwt.SigningMethodRS256, "rsa", fixture.rsa, jwt.MapClaims{"sub": "alice", "exp": t0.Add(time.Hour).Unix()})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := &Request{Method: "GET", RawPath: "/api/companies/co77/sites/site77-3/items/9", Now: t0,
			Cred: ParseCredential(CredentialHeaders{Authorization: "Bearer " + tok})}
		for pb.Next() {
			decideJWT(b, e, req, u, dir)
		}
	})
}
