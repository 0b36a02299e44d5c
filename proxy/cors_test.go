package proxy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
)

// The browser origins of the CORS tests: corsOrigin is listed by the active
// client "browser", corsSuspendedOrigin only by a suspended client.
const (
	corsOrigin          = "https://app.browser.test"
	corsSuspendedOrigin = "https://old.browser.test"
)

// corsRoutes is testRoutes with a cors: block whose origins come from the
// clients.
var corsRoutes = strings.Replace(testRoutes, "default: deny\n", `default: deny
cors:
  allow_origins: clients
  allow_methods: [GET, POST, PUT, DELETE]
  allow_headers: [Authorization, Content-Type, X-API-Key]
  expose_headers: [X-Request-Id, RateLimit-Remaining, Retry-After]
  max_age: 300
`, 1)

// addCORSClients adds "browser" (active, rate limit 2, corsOrigin) and
// "gone" (suspended, corsSuspendedOrigin) to a fixture.
func addCORSClients(origins ...string) func(f *storetest.Fixture) {
	return func(f *storetest.Fixture) {
		add := func(n int, key, status string, origins []string, rate *int) {
			secret := "secret-of-" + key
			f.Secrets[key] = secret
			f.Clients = append(f.Clients, policy.ClientRecord{
				ID: "55555555-0000-4000-8000-0000000009" + string(rune('0'+n/10)) + string(rune('0'+n%10)), ClientKey: key,
				Name: "Client " + key, Status: status, APIKeyHash: storetest.HashSecret(secret),
				AllowedOrigins: origins, AllowedIPs: []string{}, AllowedPaths: []string{}, RateLimitPerMin: rate,
			})
		}
		two := 2
		add(1, "browser", "active", append([]string{corsOrigin}, origins...), &two)
		add(2, "gone", "suspended", []string{corsSuspendedOrigin}, nil)
	}
}

// corsUpstream answers every request 200 with CORS headers of its own
// (which the gateway must replace) and counts the requests it saw.
func corsUpstream(t testing.TB) (addr string, seen *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen = new(atomic.Int64)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		seen.Add(1)
		h := &ctx.Response.Header
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Methods", "TRACE")
		h.Set("Access-Control-Expose-Headers", "X-Secret")
		h.Set("Vary", "Accept-Encoding")
		ctx.SetBodyString(`{"ok":true}`)
	}}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String(), seen
}

// checkCORSAnswer checks the headers of a non-preflight answer: with
// allowed, the gateway's CORS headers and Vary: Origin; without, no
// Access-Control-* header at all.
func checkCORSAnswer(t *testing.T, r *rawResponse, origin string, allowed bool) {
	t.Helper()
	if !allowed {
		for k := range r.header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("answer to a refused origin carries %s: %q", k, r.header.Values(k))
			}
		}
		return
	}
	if g := r.header.Values("Access-Control-Allow-Origin"); len(g) != 1 || g[0] != origin {
		t.Errorf("Access-Control-Allow-Origin = %q, want [%s]", g, origin)
	}
	if g := r.header.Get("Access-Control-Expose-Headers"); g != "X-Request-Id, RateLimit-Remaining, Retry-After" {
		t.Errorf("Access-Control-Expose-Headers = %q", g)
	}
	if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary = %q, want Origin in it", r.header.Values("Vary"))
	}
	for _, k := range []string{"Access-Control-Allow-Credentials", "Access-Control-Allow-Methods"} {
		if g := r.header.Values(k); len(g) != 0 {
			t.Errorf("%s = %q, want none", k, g)
		}
	}
}

// checkPreflight checks a preflight's answer: 204 with the block's headers,
// or 403 cors_rejected without any CORS header.
func checkPreflight(t *testing.T, r *rawResponse, origin string, allowed bool) {
	t.Helper()
	if !allowed {
		if r.status != 403 || r.reason() != "cors_rejected" {
			t.Fatalf("status %d %s, want 403 cors_rejected", r.status, r.body)
		}
		checkCORSAnswer(t, r, origin, false)
		return
	}
	if r.status != 204 {
		t.Fatalf("status %d %s, want 204", r.status, r.body)
	}
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":  origin,
		"Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
		"Access-Control-Allow-Headers": "Authorization, Content-Type, X-API-Key",
		"Access-Control-Max-Age":       "300",
		"Vary":                         "Origin",
	} {
		if g := r.header.Values(k); len(g) != 1 || g[0] != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
	if r.header.Get("X-Request-Id") == "" || len(r.body) != 0 {
		t.Errorf("X-Request-Id %q, body %q", r.header.Get("X-Request-Id"), r.body)
	}
	if g := r.header.Get("Access-Control-Allow-Credentials"); g != "" {
		t.Errorf("Access-Control-Allow-Credentials = %q without allow_credentials", g)
	}
}

func preflightText(target, origin, method, headers string, extra ...string) string {
	h := []string{"Origin", origin, "Access-Control-Request-Method", method}
	if headers != "" {
		h = append(h, "Access-Control-Request-Headers", headers)
	}
	return reqText("OPTIONS", target, append(h, extra...)...)
}

// TestCORSThroughProxy: preflights are answered by the gateway and never
// reach the upstream; every other answer to an allowed Origin (allowed,
// denied, rate limited) carries the gateway's CORS headers in place of the
// upstream's; a refused Origin gets none.
func TestCORSThroughProxy(t *testing.T) {
	up, seen := corsUpstream(t)
	e := newEnv(t, envOptions{routes: corsRoutes, upstreams: []string{"http://" + up}, fixture: addCORSClients()})
	tok := e.fix.Token("browser")

	preflights := []struct {
		name, target, origin, method, headers string
		extra                                 []string
		allowed                               bool
	}{
		{"allowed", "/api/things", corsOrigin, "PUT", "x-api-key,content-type", nil, true},
		{"allowed, odd spacing and case", "/api/things", corsOrigin, "POST", "  X-API-KEY ,\tContent-Type,, ", nil, true},
		{"allowed with credentials sent anyway", "/api/things", corsOrigin, "GET", "x-api-key", []string{"X-API-Key", "browser.wrong-secret"}, true},
		{"hundreds of requested headers", "/api/things", corsOrigin, "POST", strings.Repeat("X-Api-Key, ", 400) + "content-type", nil, true},
		{"hundreds of requested headers, one refused", "/api/things", corsOrigin, "POST", strings.Repeat("x-api-key, ", 400) + "x-extra", nil, false},
		{"origin of a suspended client", "/api/things", corsSuspendedOrigin, "GET", "", nil, false},
		{"origin null", "/api/things", "null", "GET", "", nil, false},
		{"unknown origin", "/api/things", "https://evil.test", "GET", "", nil, false},
		{"method not allowed", "/api/things", corsOrigin, "PATCH", "", nil, false},
		{"unknown method", "/api/things", corsOrigin, "BREW", "", nil, false},
		{"header not allowed", "/api/things", corsOrigin, "GET", "x-api-key, x-debug", nil, false},
		{"public route", "/healthz", corsOrigin, "GET", "", nil, true},
	}
	for _, c := range preflights {
		t.Run("preflight "+c.name, func(t *testing.T) {
			before := seen.Load()
			r := e.do(directPeer, preflightText(c.target, c.origin, c.method, c.headers, c.extra...))
			checkPreflight(t, r, c.origin, c.allowed)
			if n := seen.Load() - before; n != 0 {
				t.Errorf("the upstream saw %d requests", n)
			}
		})
	}
	t.Run("preflight path screening first", func(t *testing.T) {
		r := e.do(directPeer, preflightText("/api/%2e%2e/admin", corsOrigin, "GET", ""))
		if r.status != 400 || r.reason() != "path_invalid" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, false)
	})
	t.Run("preflight without a route is an ordinary request", func(t *testing.T) {
		r := e.do(directPeer, preflightText("/nowhere", corsOrigin, "GET", ""))
		if r.status != 403 || r.reason() != "no_route" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})
	t.Run("OPTIONS without Access-Control-Request-Method needs a credential", func(t *testing.T) {
		r := e.do(directPeer, reqText("OPTIONS", "/api/things", "Origin", corsOrigin))
		if r.status != 401 || r.reason() != "credentials_missing" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})

	actual := []struct {
		name, method, target, origin string
		headers                      []string
		status                       int
		reason                       string
		allowed                      bool
	}{
		{"allowed request, upstream's CORS replaced", "GET", "/api/things", corsOrigin, []string{"X-API-Key", tok}, 200, "", true},
		{"401 to an allowed origin", "GET", "/api/things", corsOrigin, nil, 401, "credentials_missing", true},
		{"403 no_route to an allowed origin", "GET", "/nowhere", corsOrigin, []string{"X-API-Key", tok}, 403, "no_route", true},
		{"400 path_invalid to an allowed origin", "GET", "/api/a//b", corsOrigin, []string{"X-API-Key", tok}, 400, "path_invalid", true},
		{"refused origin: upstream's CORS dropped", "GET", "/api/things", "https://evil.test", []string{"X-API-Key", e.fix.Token("app")}, 200, "", false},
		{"refused origin denied", "GET", "/api/things", "https://evil.test", []string{"X-API-Key", tok}, 403, "origin_not_allowed", false},
		{"no Origin at all", "GET", "/api/things", "", []string{"X-API-Key", e.fix.Token("app")}, 200, "", false},
	}
	for _, c := range actual {
		t.Run(c.name, func(t *testing.T) {
			h := c.headers
			if c.origin != "" {
				h = append([]string{"Origin", c.origin}, h...)
			}
			r := e.do(directPeer, reqText(c.method, c.target, h...))
			if r.status != c.status || r.reason() != c.reason {
				t.Fatalf("status %d %s, want %d %s", r.status, r.body, c.status, c.reason)
			}
			checkCORSAnswer(t, r, c.origin, c.allowed)
		})
	}
	t.Run("429 carries CORS and Retry-After", func(t *testing.T) {
		var r *rawResponse
		for i := 0; i < 3; i++ {
			r = e.do(directPeer, reqText("GET", "/api/things", "Origin", corsOrigin, "X-API-Key", tok))
		}
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Fatalf("status %d %v", r.status, r.header)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})
}

// TestCORSForwardAuth: Envoy's /_auth/envoy answers a preflight 204 (Envoy
// passes any answer but 200 to the client, so it goes no further); /_auth
// (nginx, Traefik, which would let a 2xx through to the app) decides an
// OPTIONS like any request; answers to allowed origins carry CORS headers.
func TestCORSForwardAuth(t *testing.T) {
	e := newEnv(t, envOptions{routes: corsRoutes, noUpstream: true, fixture: addCORSClients()})
	t.Run("envoy preflight allowed", func(t *testing.T) {
		r := e.do(trustedPeer, preflightText("/_auth/envoy/api/things", corsOrigin, "GET", "x-api-key"))
		checkPreflight(t, r, corsOrigin, true)
	})
	t.Run("envoy preflight refused", func(t *testing.T) {
		r := e.do(trustedPeer, preflightText("/_auth/envoy/api/things", "https://evil.test", "GET", ""))
		checkPreflight(t, r, "https://evil.test", false)
	})
	t.Run("envoy preflight from an untrusted peer", func(t *testing.T) {
		r := e.do(directPeer, preflightText("/_auth/envoy/api/things", corsOrigin, "GET", ""))
		if r.status != 403 || r.reason() != "forwarded_untrusted" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
	})
	t.Run("nginx-style /_auth decides OPTIONS as a request", func(t *testing.T) {
		r := e.do(trustedPeer, reqText("GET", "/_auth", "X-Original-Method", "OPTIONS", "X-Original-URI", "/api/things",
			"Origin", corsOrigin, "Access-Control-Request-Method", "GET"))
		if r.status != 401 || r.reason() != "credentials_missing" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})
	t.Run("allowed forward-auth answer carries CORS", func(t *testing.T) {
		r := e.do(trustedPeer, reqText("GET", "/_auth", "X-Original-Method", "GET", "X-Original-URI", "/api/things",
			"Origin", corsOrigin, "X-API-Key", e.fix.Token("browser")))
		if r.status != 200 {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})
}

// TestCORSOffWithoutBlock: without a cors: block nothing changes: an
// OPTIONS preflight needs a credential, and no CORS header is added or
// removed.
func TestCORSOffWithoutBlock(t *testing.T) {
	up, seen := corsUpstream(t)
	e := newEnv(t, envOptions{upstreams: []string{"http://" + up}, fixture: addCORSClients()})
	r := e.do(directPeer, preflightText("/api/things", corsOrigin, "GET", ""))
	if r.status != 401 || r.reason() != "credentials_missing" || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("status %d %s %v", r.status, r.body, r.header)
	}
	r = e.do(directPeer, reqText("GET", "/api/things", "Origin", corsOrigin, "X-API-Key", e.fix.Token("browser")))
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Expose-Headers") != "X-Secret" {
		t.Fatalf("status %d %v: the upstream's own CORS headers must pass untouched", r.status, r.header)
	}
	if seen.Load() != 1 {
		t.Errorf("upstream saw %d requests", seen.Load())
	}
}

// TestCORSSuspendedClientOrigin: with the PostgreSQL store and allow_origins:
// clients, suspending the only client that lists an origin removes it
// within 1 s: preflights from it are refused, answers lose their CORS
// headers; reactivating brings it back.
func TestCORSSuspendedClientOrigin(t *testing.T) {
	fix := storetest.Basic()
	addCORSClients()(&fix)
	s, pool := openPostgresStore(t, fix)
	e := newEnv(t, envOptions{store: s, routes: corsRoutes, noUpstream: true, fixture: addCORSClients()})
	pre := preflightText("/api/things", corsOrigin, "GET", "x-api-key")
	checkPreflight(t, e.do(directPeer, pre), corsOrigin, true)
	waitPreflight := func(allowed bool) {
		t.Helper()
		start := time.Now()
		if _, err := pool.Exec(context.Background(), `UPDATE api_clients SET status = $1 WHERE client_key = 'browser'`,
			map[bool]string{true: "active", false: "suspended"}[allowed]); err != nil {
			t.Fatal(err)
		}
		for {
			r := e.do(directPeer, pre)
			if (r.status == 204) == allowed {
				checkPreflight(t, r, corsOrigin, allowed)
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("after %v the preflight still answers %d", time.Since(start), r.status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitPreflight(false)
	r := e.do(directPeer, reqText("GET", "/api/things", "Origin", corsOrigin, "X-API-Key", e.fix.Token("browser")))
	if r.status != 401 || r.reason() != "api_key_inactive" {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	checkCORSAnswer(t, r, corsOrigin, false)
	waitPreflight(true)
}

// TestCORSThroughNginx runs the shipped configs/nginx/ in front of
// scopegate (PostgreSQL store, allow_origins: clients) and an app that sets
// CORS headers of its own: preflights reach scopegate's traffic port and
// never the app; answers to an allowed origin (allowed, 401, 429) carry
// scopegate's CORS headers in place of the app's; a suspended client's
// origin is refused within 1 s.
func TestCORSThroughNginx(t *testing.T) {
	nginxBinary(t)
	fix := storetest.Basic()
	addCORSClients()(&fix)
	s, pool := openPostgresStore(t, fix)
	e := newEnv(t, envOptions{store: s, routes: corsRoutes, noUpstream: true, fixture: addCORSClients(),
		trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app, seen := corsUpstream(t)
	ngx := startNginx(t, e.addr, app)
	get := func(raw string) *rawResponse { return doRaw(t, netip.Addr{}, ngx, raw) }
	tok := e.fix.Token("browser")

	t.Run("preflight allowed, never reaches the app", func(t *testing.T) {
		before := seen.Load()
		checkPreflight(t, get(preflightText("/api/things?x=1", corsOrigin, "PUT", "x-api-key, content-type")), corsOrigin, true)
		if seen.Load() != before {
			t.Error("the app saw the preflight")
		}
	})
	t.Run("preflight refused", func(t *testing.T) {
		checkPreflight(t, get(preflightText("/api/things", "https://evil.test", "PUT", "x-api-key")), "https://evil.test", false)
	})
	t.Run("preflight with a bad path", func(t *testing.T) {
		r := get(preflightText("/api/%2e%2e/x", corsOrigin, "GET", ""))
		if r.status != 400 || r.reason() != "path_invalid" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
	})
	t.Run("allowed request: the app's CORS headers replaced", func(t *testing.T) {
		r := get(reqText("GET", "/api/things", "Origin", corsOrigin, "X-API-Key", tok))
		if r.status != 200 || string(r.body) != `{"ok":true}` {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})
	t.Run("401 readable by the browser", func(t *testing.T) {
		r := get(reqText("GET", "/api/things", "Origin", corsOrigin))
		if r.status != 401 || r.reason() != "credentials_missing" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})
	t.Run("refused origin: no CORS headers, the app's hidden", func(t *testing.T) {
		r := get(reqText("GET", "/api/things", "Origin", "https://evil.test", "X-API-Key", e.fix.Token("app")))
		if r.status != 200 {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, "https://evil.test", false)
	})
	t.Run("429 readable by the browser", func(t *testing.T) {
		var r *rawResponse
		for i := 0; i < 3; i++ {
			r = get(reqText("GET", "/api/things", "Origin", corsOrigin, "X-API-Key", tok))
		}
		if r.status != 429 || r.reason() != "rate_limited" || r.header.Get("Retry-After") == "" {
			t.Fatalf("status %d %s %v", r.status, r.body, r.header)
		}
		checkCORSAnswer(t, r, corsOrigin, true)
	})
	t.Run("suspended client's origin refused within 1 s", func(t *testing.T) {
		start := time.Now()
		if _, err := pool.Exec(context.Background(), `UPDATE api_clients SET status = 'suspended' WHERE client_key = 'browser'`); err != nil {
			t.Fatal(err)
		}
		for {
			r := get(preflightText("/api/things", corsOrigin, "GET", ""))
			if r.status == 403 {
				checkPreflight(t, r, corsOrigin, false)
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("after %v the preflight still answers %d", time.Since(start), r.status)
			}
			time.Sleep(10 * time.Millisecond)
		}
		r := get(reqText("GET", "/api/things", "Origin", corsOrigin, "X-API-Key", tok))
		if r.status != 401 || r.reason() != "api_key_inactive" {
			t.Fatalf("status %d %s", r.status, r.body)
		}
		checkCORSAnswer(t, r, corsOrigin, false)
	})
}
