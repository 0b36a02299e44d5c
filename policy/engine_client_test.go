package policy

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

func testClients(tb testing.TB) map[string]*Client {
	tb.Helper()
	mk := func(rec ClientRecord) *Client {
		if rec.Status == "" {
			rec.Status = "active"
		}
		if rec.APIKeyHash == "" {
			rec.APIKeyHash = sha256Hex("good")
		}
		c, _ := CompileClient(rec)
		return c
	}
	bc, _ := bcrypt.GenerateFromPassword([]byte("good"), bcrypt.MinCost)
	cs := []*Client{
		mk(ClientRecord{ID: "1", ClientKey: "plain"}),
		mk(ClientRecord{ID: "2", ClientKey: "suspended", Status: "suspended"}),
		mk(ClientRecord{ID: "3", ClientKey: "expired", ExpiresAt: timep(t0)}),
		mk(ClientRecord{ID: "4", ClientKey: "future", ExpiresAt: timep(t0.Add(time.Second))}),
		mk(ClientRecord{ID: "5", ClientKey: "ips", AllowedIPs: []string{"192.168.0.0/16", "10.1.2.3", "2001:db8::/32"}}),
		mk(ClientRecord{ID: "6", ClientKey: "badips", AllowedIPs: []string{"nonsense"}}),
		mk(ClientRecord{ID: "7", ClientKey: "origins", AllowedOrigins: []string{"https://app.example.com"}}),
		mk(ClientRecord{ID: "8", ClientKey: "paths", AllowedPaths: []string{"GET /api/orders/*", "/api/public/**"}}),
		mk(ClientRecord{ID: "9", ClientKey: "limited", RateLimitPerMin: intp(2)}),
		mk(ClientRecord{ID: "10", ClientKey: "bcrypt", APIKeyHash: string(bc)}),
		mk(ClientRecord{ID: "11", ClientKey: "unknownhash", APIKeyHash: "md5:abc"}),
		mk(ClientRecord{ID: "12", ClientKey: "bare", APIKeyHash: sha256Hex("good")[len("sha256:"):]}),
		mk(ClientRecord{ID: "13", ClientKey: "all", Status: "revoked", ExpiresAt: timep(t0.Add(-time.Hour)), AllowedIPs: []string{"1.1.1.1"}, AllowedOrigins: []string{"https://x"}, AllowedPaths: []string{"/x"}, RateLimitPerMin: intp(1)}),
		mk(ClientRecord{ID: "14", ClientKey: "unlimited", RateLimitPerMin: intp(0)}),
	}
	m := make(map[string]*Client)
	for _, c := range cs {
		m[c.ClientKey] = c
	}
	return m
}

func TestAuthorizeClient(t *testing.T) {
	clients := testClients(t)
	lookup := func(k string) *Client { return clients[k] }
	tests := []struct {
		name   string
		req    func() *Request
		reason Reason
		status int
	}{
		{"valid", func() *Request { return apiReq("GET", "/x", "plain.good") }, ReasonNone, 200},
		{"bare hex hash", func() *Request { return apiReq("GET", "/x", "bare.good") }, ReasonNone, 200},
		{"bcrypt hash", func() *Request { return apiReq("GET", "/x", "bcrypt.good") }, ReasonNone, 200},
		{"bcrypt wrong secret", func() *Request { return apiReq("GET", "/x", "bcrypt.bad") }, ReasonAPIKeyInvalid, 401},
		{"missing credential", func() *Request { return apiReq("GET", "/x", "") }, ReasonCredentialsMissing, 401},
		{"unknown client", func() *Request { return apiReq("GET", "/x", "nobody.good") }, ReasonAPIKeyInvalid, 401},
		{"malformed token", func() *Request { return apiReq("GET", "/x", "plaingood") }, ReasonAPIKeyInvalid, 401},
		{"hash mismatch", func() *Request { return apiReq("GET", "/x", "plain.bad") }, ReasonAPIKeyInvalid, 401},
		{"unknown hash format never verifies", func() *Request { return apiReq("GET", "/x", "unknownhash.good") }, ReasonAPIKeyInvalid, 401},
		{"invalid wins over inactive", func() *Request { return apiReq("GET", "/x", "suspended.bad") }, ReasonAPIKeyInvalid, 401},
		{"inactive", func() *Request { return apiReq("GET", "/x", "suspended.good") }, ReasonAPIKeyInactive, 401},
		{"inactive wins over expired and the rest", func() *Request { return apiReq("GET", "/y", "all.good") }, ReasonAPIKeyInactive, 401},
		{"expired at exactly now", func() *Request { return apiReq("GET", "/x", "expired.good") }, ReasonAPIKeyExpired, 401},
		{"not yet expired", func() *Request { return apiReq("GET", "/x", "future.good") }, ReasonNone, 200},
		{"ip allowed", func() *Request { return apiReq("GET", "/x", "ips.good") }, ReasonNone, 200},
		{"ip v4-mapped allowed", func() *Request {
			r := apiReq("GET", "/x", "ips.good")
			r.ClientIP = netip.MustParseAddr("::ffff:192.168.9.9")
			return r
		}, ReasonNone, 200},
		{"ip v6 allowed", func() *Request {
			r := apiReq("GET", "/x", "ips.good")
			r.ClientIP = netip.MustParseAddr("2001:db8::1")
			return r
		}, ReasonNone, 200},
		{"ip not allowed", func() *Request {
			r := apiReq("GET", "/x", "ips.good")
			r.ClientIP = netip.MustParseAddr("10.1.2.4")
			return r
		}, ReasonIPNotAllowed, 403},
		{"ip unknown denied", func() *Request {
			r := apiReq("GET", "/x", "ips.good")
			r.ClientIP = netip.Addr{}
			return r
		}, ReasonIPNotAllowed, 403},
		{"only malformed ip entries deny", func() *Request { return apiReq("GET", "/x", "badips.good") }, ReasonIPNotAllowed, 403},
		{"origin absent passes", func() *Request { return apiReq("GET", "/x", "origins.good") }, ReasonNone, 200},
		{"origin allowed", func() *Request {
			r := apiReq("GET", "/x", "origins.good")
			r.Origin = "https://app.example.com:443"
			return r
		}, ReasonNone, 200},
		{"origin not allowed", func() *Request {
			r := apiReq("GET", "/x", "origins.good")
			r.Origin = "https://evil.example.com"
			return r
		}, ReasonOriginNotAllowed, 403},
		{"path allowed with method", func() *Request { return apiReq("GET", "/api/orders/7", "paths.good") }, ReasonNone, 200},
		{"path method not allowed", func() *Request { return apiReq("POST", "/api/orders/7", "paths.good") }, ReasonPathNotAllowed, 403},
		{"path allowed deep", func() *Request { return apiReq("DELETE", "/api/public", "paths.good") }, ReasonNone, 200},
		{"path matched decoded", func() *Request { return apiReq("GET", "/api/%6Frders/7", "paths.good") }, ReasonNone, 200},
		{"path not allowed", func() *Request { return apiReq("GET", "/api/admin", "paths.good") }, ReasonPathNotAllowed, 403},
		{"dot-dot bypass is path_invalid first", func() *Request { return apiReq("GET", "/api/public/../admin", "paths.good") }, ReasonPathInvalid, 400},
		{"encoded dot-dot bypass", func() *Request { return apiReq("GET", "/api/public/%2E%2e/admin", "paths.good") }, ReasonPathInvalid, 400},
		{"encoded slash without routes", func() *Request { return apiReq("GET", "/api/public%2F..%2Fadmin", "paths.good") }, ReasonPathInvalid, 400},
		{"forwarded invalid after path screening", func() *Request {
			r := apiReq("GET", "/x", "plain.good")
			r.Forwarded = ReasonForwardedInvalid
			return r
		}, ReasonForwardedInvalid, 400},
	}
	e := mustEngine(t, EngineConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			d := decideAPIKey(e, req, lookup)
			if d.Reason != tt.reason || d.Status() != tt.status || d.Allowed() != (tt.reason == ReasonNone) {
				t.Errorf("decision(%s %s) = %v/%d, want %v/%d", req.Method, req.RawPath, d.Reason, d.Status(), tt.reason, tt.status)
			}
			if d.Allowed() && (d.Identity.Type != CredentialAPIKey || d.Identity.ClientKey != req.Cred.ClientKey) {
				t.Errorf("identity = %+v", d.Identity)
			}
		})
	}
}

func TestAuthorizeClientRateLimit(t *testing.T) {
	clients := testClients(t)
	lookup := func(k string) *Client { return clients[k] }
	e := mustEngine(t, EngineConfig{DefaultRateLimitPerMin: 100})

	// Denials before the bucket consume no token.
	bad := apiReq("GET", "/x", "limited.good")
	bad.Origin = "https://x"
	bad.ClientIP = netip.Addr{}
	for i := 0; i < 5; i++ {
		_ = decideAPIKey(e, apiReq("GET", "/x", "limited.bad"), lookup)
	}
	steps := []struct {
		at                   time.Duration
		reason               Reason
		remaining, reset, ra int
	}{
		{0, ReasonNone, 1, 30, 0},
		{0, ReasonNone, 0, 60, 0},
		{0, ReasonRateLimited, 0, 60, 30},
		{10 * time.Second, ReasonRateLimited, 0, 50, 20},
		{30 * time.Second, ReasonNone, 0, 60, 0},
		{90 * time.Second, ReasonNone, 1, 30, 0},
	}
	for i, s := range steps {
		req := apiReq("GET", "/x", "limited.good")
		req.Now = t0.Add(s.at)
		d := decideAPIKey(e, req, lookup)
		rl := d.RateLimit
		if d.Reason != s.reason || !rl.Applied || rl.Limit != 2 || rl.Remaining != s.remaining || rl.ResetSecs != s.reset || rl.RetryAfter != s.ra {
			t.Errorf("step %d: reason %v, ratelimit %+v; want %v remaining %d reset %d retry %d", i, d.Reason, rl, s.reason, s.remaining, s.reset, s.ra)
		}
		if s.reason == ReasonRateLimited && d.Status() != 429 {
			t.Errorf("step %d: status %d, want 429", i, d.Status())
		}
	}

	// NULL limit uses the default; 0 is unlimited and carries no state.
	d := decideAPIKey(e, apiReq("GET", "/x", "plain.good"), lookup)
	if !d.RateLimit.Applied || d.RateLimit.Limit != 100 || d.RateLimit.Remaining != 99 {
		t.Errorf("default limit: %+v", d.RateLimit)
	}
	d = decideAPIKey(e, apiReq("GET", "/x", "unlimited.good"), lookup)
	if d.RateLimit.Applied || !d.Allowed() {
		t.Errorf("unlimited: %+v", d)
	}

	// A changed limit applies at once (capacity and refill rate) but keeps
	// the tokens left: changing it never hands out a fresh burst.
	at := t0.Add(time.Hour) // the limited bucket is full again by then
	withLimit := func(n int) *Client {
		return mustClient(t, ClientRecord{ID: "9", ClientKey: "limited", Status: "active", APIKeyHash: sha256Hex("good"), RateLimitPerMin: intp(n)})
	}
	limitSteps := []struct {
		limit     int
		after     time.Duration
		allowed   bool
		remaining int
	}{
		{5, 0, true, 1},                        // 2 tokens carried from the full limit-2 bucket
		{5, 0, true, 0},                        //
		{5, 0, false, 0},                       // exhausted
		{6, 0, false, 0},                       // raising the limit refills nothing
		{5, 0, false, 0},                       // nor does lowering it again
		{5, 12 * time.Second, true, 0},         // one token per 12 s at 5/min
		{100, 0, false, 0},                     // 100/min: nothing carried
		{100, 600 * time.Millisecond, true, 0}, // one token per 0.6 s
	}
	for i, st := range limitSteps {
		at = at.Add(st.after)
		req := apiReq("GET", "/x", "limited.good")
		req.Now = at
		m, _ := e.Match(req)
		d := e.AuthorizeClient(req, &m, withLimit(st.limit))
		if d.Allowed() != st.allowed || d.RateLimit.Limit != st.limit || d.RateLimit.Remaining != st.remaining {
			t.Errorf("limit step %d (%d/min): allowed %v (%v), %+v; want allowed %v remaining %d", i, st.limit, d.Allowed(), d.Reason, d.RateLimit, st.allowed, st.remaining)
		}
	}

	// Idle buckets are swept.
	if n := e.SweepRateLimits(at.Add(10*time.Minute), time.Minute); n != 2 || e.buckets.len() != 0 {
		t.Errorf("SweepRateLimits dropped %d, %d left", n, e.buckets.len())
	}
}

// TestSlowHashCache: a slow hash's outcome is remembered per client and
// secret, successes and failures apart, until the TTL passes; the gate
// counts every slow verification that ran.
func TestSlowHashCache(t *testing.T) {
	c := bcryptClient(t)
	g := newSlowHashGate(1, defaultSlowHashQueue, defaultSlowHashWait)
	check := func(secret string, at time.Duration, want bool, wantChecks int64) {
		t.Helper()
		if got := c.checkSecret(secret, t0.Add(at), time.Minute, g) == secretGood; got != want {
			t.Errorf("checkSecret(%q, +%v) = %v, want %v", secret, at, got, want)
		}
		if n := g.checks.Load(); n != wantChecks {
			t.Errorf("after checkSecret(%q, +%v): %d slow checks, want %d", secret, at, n, wantChecks)
		}
	}
	check("good", 0, true, 1)
	check("good", 30*time.Second, true, 1) // remembered success
	check("wrong", 0, false, 2)
	check("wrong", 30*time.Second, false, 2) // remembered failure: no second bcrypt
	// A flood of distinct wrong guesses (more than the bound) evicts only
	// failures: the secret in use stays remembered.
	for i := range 2 * verifiedCacheMax {
		c.checkSecret(fmt.Sprintf("guess-%d", i), t0, time.Minute, g)
	}
	check("good", 40*time.Second, true, 2+2*verifiedCacheMax)
	// Corrupt the verifier: a remembered outcome must not need it, an
	// expired one must.
	c.hash.bcrypt = []byte("$2a$04$invalidinvalidinvalidinvalidinvalidinvalidinvalidinva")
	check("good", 59*time.Second, true, 2+2*verifiedCacheMax)
	check("good", time.Minute, false, 3+2*verifiedCacheMax)
	check("other", 0, false, 4+2*verifiedCacheMax)
}

// burstThroughGate decides the tokens concurrently against c on an engine
// whose slow-hash gate has one slot, held until every request waits for
// it, so they would overlap if the gate let them. It returns the engine
// and the decisions, in token order.
func burstThroughGate(t *testing.T, c *Client, tokens []string) (*Engine, []Decision) {
	t.Helper()
	// The wait bound is out of the way: the slot is held until every
	// request waits, however long starting them takes.
	e := mustEngine(t, EngineConfig{SlowHashConcurrency: 1, SlowHashWait: time.Hour})
	e.slow.acquire("holder")
	var wg sync.WaitGroup
	out := make([]Decision, len(tokens))
	for i, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = decideAPIKey(e, apiReq("GET", "/x", tok), func(string) *Client { return c })
		}()
	}
	waitFor(t, "every request waiting for the slot", func() bool { return e.slow.waiting.Load() == int64(len(tokens)) })
	e.slow.release("holder")
	wg.Wait()
	return e, out
}

// bcryptClient is a client whose key hash is bcrypt("good").
func bcryptClient(t *testing.T) *Client {
	t.Helper()
	bc, _ := bcrypt.GenerateFromPassword([]byte("good"), bcrypt.MinCost)
	return mustClient(t, ClientRecord{ID: "1", ClientKey: "k", Status: "active", APIKeyHash: string(bc)})
}

// TestSlowHashGate: with SlowHashConcurrency 1, concurrent wrong guesses
// against a bcrypt client run their verifications one at a time, and every
// one is still answered api_key_invalid.
func TestSlowHashGate(t *testing.T) {
	const n = 8
	guesses := make([]string, n)
	for i := range guesses {
		guesses[i] = fmt.Sprintf("k.guess-%d", i)
	}
	e, ds := burstThroughGate(t, bcryptClient(t), guesses)
	for i, d := range ds {
		if d.Reason != ReasonAPIKeyInvalid {
			t.Errorf("guess %d: reason %v, want api_key_invalid", i, d.Reason)
		}
	}
	if got := e.slow.checks.Load(); got != n {
		t.Errorf("%d slow checks, want %d", got, n)
	}
	if p := e.slow.peak.Load(); p != 1 {
		t.Errorf("at most %d slow checks ran at once, want 1", p)
	}
	if def := mustEngine(t, EngineConfig{}); def.slow.slots != max(1, runtime.GOMAXPROCS(0)/2) {
		t.Errorf("default SlowHashConcurrency = %d, want half of GOMAXPROCS, at least 1", def.slow.slots)
	}
}

// TestSlowHashBurstOneCheck: a burst of requests with the same secret, all
// waiting for the gate, costs one slow check: each one that waited finds
// the outcome the first stored.
func TestSlowHashBurstOneCheck(t *testing.T) {
	const n = 8
	same := make([]string, n)
	for i := range same {
		same[i] = "k.good"
	}
	e, ds := burstThroughGate(t, bcryptClient(t), same)
	for i, d := range ds {
		if !d.Allowed() {
			t.Errorf("request %d denied: %v", i, d.Reason)
		}
	}
	if got := e.slow.checks.Load(); got != 1 {
		t.Errorf("a burst of %d requests with one secret ran %d slow checks, want 1", n, got)
	}
}

// waitFor polls cond every millisecond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestArgon2id(t *testing.T) {
	// Generated with the reference argon2 CLI semantics: m=64 KiB, t=1, p=1.
	v, err := compileHash("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$" + argonTestKey("good", "saltsalt", 1, 64, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !v.verify("good") || v.verify("bad") {
		t.Error("argon2id verify mismatch")
	}
	for _, h := range []string{
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$AAAAAAAAAAAAAAAAAAAAAA",
		"sha256:xyz", "$2x$10$abc",
	} {
		if _, err := compileHash(h); err == nil {
			t.Errorf("compileHash(%q) accepted", h)
		}
	}
}

// TestEngineConcurrent exercises buckets, caches and route swaps from many
// goroutines (meaningful under -race).
func TestEngineConcurrent(t *testing.T) {
	clients := testClients(t)
	e := mustEngine(t, EngineConfig{Routes: mustRoutes(t, specRoutes), DefaultRateLimitPerMin: 1000, JWT: JWTConfig{Keys: fixture.keys}})
	tok := sign(t, jwt.SigningMethodES256, "ec", fixture.ec, jwt.MapClaims{"sub": "alice", "exp": t0.Add(time.Hour).Unix()})
	routes := mustRoutes(t, specRoutes) // parsed here: t.Fatal must not run in the goroutines
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 200; i++ {
				req := apiReq("GET", "/api/keys-only/x", "bcrypt.good")
				m, md := e.Match(req)
				if md.Reason != ReasonNone {
					t.Errorf("Match: %v", md.Reason)
					return
				}
				// 800 requests in all stay within the bucket of 1000 a minute.
				if d := e.AuthorizeClient(req, &m, clients["bcrypt"]); !d.Allowed() {
					t.Errorf("AuthorizeClient: %v, want allowed", d.Reason)
					return
				}
				if _, vd := e.VerifyToken(jwtReq(tok, t0)); vd.Reason != ReasonNone {
					t.Errorf("VerifyToken: %v", vd.Reason)
					return
				}
				if i%50 == 0 {
					e.SetRoutes(routes)
					e.SweepRateLimits(t0, time.Minute)
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
