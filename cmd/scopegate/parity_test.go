package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/syncbuf"
)

// gateway is an in-process `scopegate serve` on loopback ports.
type gateway struct {
	traffic, admin string // host:port of each listener
	base           string // "http://" + traffic
	sigs           chan os.Signal
	exited         chan struct{} // closed when serve returned; err holds its result
	err            error
	logs           *syncbuf.Buffer
}

// startGateway runs the real serve with the SCOPEGATE_ variables of env
// (everything else unset, listeners on free loopback ports) and stops it
// with SIGTERM at the end of the test, asserting a clean exit.
func startGateway(t *testing.T, env map[string]string) *gateway {
	t.Helper()
	return runGateway(t, testConfig(t, env))
}

// runGateway runs serve with cfg until the test ends (see startGateway).
func runGateway(t *testing.T, cfg *Config) *gateway {
	t.Helper()
	g := &gateway{sigs: make(chan os.Signal, 4), exited: make(chan struct{}), logs: &syncbuf.Buffer{}}
	logger, err := newLogger("debug", g.logs) // serve's own logger
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		defer close(g.exited)
		g.err = serve(cfg, logger, g.sigs, func(traffic, admin net.Addr) {
			g.traffic, g.admin = traffic.String(), admin.String()
			g.base = "http://" + g.traffic
			close(started)
		})
	}()
	select {
	case <-started:
	case <-g.exited:
		t.Fatalf("serve returned early: %v\n%s", g.err, g.logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not start\n%s", g.logs)
	}
	t.Cleanup(func() { g.stop(t) })
	return g
}

// stop sends SIGTERM and checks that serve returns nil. A gateway that has
// already stopped is only checked for an error.
func (g *gateway) stop(t *testing.T) {
	t.Helper()
	select {
	case <-g.exited:
	default:
		g.sigs <- syscall.SIGTERM
	}
	select {
	case <-g.exited:
		if g.err != nil {
			t.Errorf("serve returned %v", g.err)
		}
	case <-time.After(15 * time.Second):
		t.Error("serve did not stop")
	}
}

// parityRoutes exercises every decision step over the storetest.Basic data.
const parityRoutes = `
default: deny
action_by_method: {GET: view, HEAD: view, POST: create, PUT: update, PATCH: update, DELETE: delete}
superuser_actions: [manage]
routes:
  - path: /healthz
    auth: none
  - path: /api/companies/{company}/sites/{site}/inventory/**
    module: inventory
    scope: site:{site}
  - path: /api/companies/{company}/inventory/**
    module: inventory
    scope: company:{company}
  - path: /api/companies/{company}/legacy/**
    module: legacy
    scope: company:{company}
  - path: /api/companies/{company}/ghost/**
    module: ghost
    scope: company:{company}
  - path: /api/sites/{site}/billing/**
    module: billing
    scope: site:{site}
  - path: /api/stock/**
    module: inventory
    scope: site:header:X-Site-Key
  - path: /api/reports/**
    auth: [jwt]
    module: inventory
    scope: any
  - path: /api/me
    auth: [jwt]
  - path: /api/keys-only/**
    auth: [api_key]
  - path: /api/**
`

const paritySecret = "parity-hs256-secret-0123456789abcdef"

// parityCase is one request and the decision both stores must give.
type parityCase struct {
	name    string
	method  string
	path    string
	key     string            // API key client (storetest token) or a literal token
	sub     string            // JWT subject ("" none)
	jwtKind string            // "", "expired", "badsig"
	headers map[string]string // extra request headers
	status  int
	reason  string
	// identity: the X-Auth-* headers the upstream must see on an allow
	// (exactly these).
	identity map[string]string
}

func parityTable() []parityCase {
	f := storetest.Basic()
	client := func(key string) map[string]string {
		for _, c := range f.Clients {
			if c.ClientKey == key {
				return map[string]string{"X-Auth-Type": "api_key", "X-Auth-Client-Id": c.ID, "X-Auth-Client-Key": key}
			}
		}
		panic("no client " + key)
	}
	user := func(sub, scope string) map[string]string {
		for _, u := range f.Users {
			if u.Sub == sub {
				m := map[string]string{"X-Auth-Type": "jwt", "X-Auth-User-Id": u.ID, "X-Auth-User-Sub": sub}
				if u.Email != "" {
					m["X-Auth-User-Email"] = u.Email
				}
				if scope != "" {
					m["X-Auth-Scope"] = scope
				}
				return m
			}
		}
		panic("no user " + sub)
	}
	fromOffice := map[string]string{"X-Forwarded-For": "10.1.2.3"}
	acmeID := f.Companies[0].ID
	return []parityCase{
		// Routes and request screening.
		{name: "public route", method: "GET", path: "/healthz", status: 200, identity: map[string]string{}},
		{name: "no route", method: "GET", path: "/other", key: "app", status: 403, reason: "no_route"},
		{name: "encoded slash", method: "GET", path: "/api/a%2Fb", key: "app", status: 400, reason: "path_invalid"},
		{name: "unparsable forwarded for", method: "GET", path: "/api/things", key: "app", headers: map[string]string{"X-Forwarded-For": "not-an-ip"}, status: 400, reason: "forwarded_invalid"},

		// API keys, in the order of SPEC §3.
		{name: "key allowed", method: "GET", path: "/api/things", key: "app", status: 200, identity: client("app")},
		{name: "key as bearer", method: "GET", path: "/api/things", key: "app", headers: map[string]string{"X-Use-Bearer": "1"}, status: 200, identity: client("app")},
		{name: "no credential", method: "GET", path: "/api/things", status: 401, reason: "credentials_missing"},
		{name: "wrong secret", method: "GET", path: "/api/things", key: "app.wrong-secret", status: 401, reason: "api_key_invalid"},
		{name: "unknown client", method: "GET", path: "/api/things", key: "nobody.secret", status: 401, reason: "api_key_invalid"},
		{name: "malformed token", method: "GET", path: "/api/things", key: "no-dot-at-all", status: 401, reason: "api_key_invalid"},
		{name: "suspended", method: "GET", path: "/api/things", key: "suspended", status: 401, reason: "api_key_inactive"},
		{name: "revoked", method: "GET", path: "/api/things", key: "revoked", status: 401, reason: "api_key_inactive"},
		{name: "expired", method: "GET", path: "/api/things", key: "expired", status: 401, reason: "api_key_expired"},
		{name: "ip not allowed", method: "GET", path: "/api/things", key: "office", status: 403, reason: "ip_not_allowed"},
		{name: "ip allowed via trusted xff", method: "GET", path: "/api/things", key: "office", headers: fromOffice, status: 200, identity: client("office")},
		{name: "origin not allowed", method: "GET", path: "/api/things", key: "office", headers: map[string]string{"X-Forwarded-For": "10.1.2.3", "Origin": "https://evil.example.com"}, status: 403, reason: "origin_not_allowed"},
		{name: "origin allowed", method: "GET", path: "/api/things", key: "office", headers: map[string]string{"X-Forwarded-For": "10.1.2.3", "Origin": "https://app.example.com:443"}, status: 200, identity: client("office")},
		{name: "path not allowed", method: "DELETE", path: "/api/things/1", key: "app", status: 403, reason: "path_not_allowed"},
		{name: "key on a jwt-only route", method: "GET", path: "/api/me", key: "app", status: 401, reason: "credential_not_accepted"},
		{name: "key on a keys-only route", method: "GET", path: "/api/keys-only/x", key: "app", status: 200, identity: client("app")},
		{name: "rate limit 1 of 2", method: "GET", path: "/api/things", key: "limited", status: 200, identity: client("limited")},
		{name: "rate limit 2 of 2", method: "GET", path: "/api/things", key: "limited", status: 200, identity: client("limited")},
		{name: "rate limited", method: "GET", path: "/api/things", key: "limited", status: 429, reason: "rate_limited"},

		// Users.
		{name: "jwt expired", method: "GET", path: "/api/me", sub: "alice", jwtKind: "expired", status: 401, reason: "token_expired"},
		{name: "jwt bad signature", method: "GET", path: "/api/me", sub: "alice", jwtKind: "badsig", status: 401, reason: "token_invalid"},
		{name: "jwt on a keys-only route", method: "GET", path: "/api/keys-only/x", sub: "alice", status: 401, reason: "credential_not_accepted"},
		{name: "user unknown", method: "GET", path: "/api/me", sub: "mallory", status: 403, reason: "user_unknown"},
		{name: "user inactive", method: "GET", path: "/api/me", sub: "bob", status: 403, reason: "user_inactive"},
		{name: "user inactive with a grant", method: "GET", path: "/api/companies/acme/inventory/x", sub: "bob", status: 403, reason: "user_inactive"},
		{name: "authenticated route", method: "GET", path: "/api/me", sub: "carol", status: 200, identity: user("carol", "")},
		{name: "company grant", method: "GET", path: "/api/companies/acme/inventory/x", sub: "alice", status: 200, identity: user("alice", "company:acme")},
		{name: "company named by id", method: "GET", path: "/api/companies/" + acmeID + "/inventory/x", sub: "alice", status: 200, identity: user("alice", "company:acme")},
		{name: "company grant on a site", method: "GET", path: "/api/companies/acme/sites/acme-hq/inventory/x", sub: "alice", status: 200, identity: user("alice", "site:acme-hq")},
		{name: "site grant", method: "PUT", path: "/api/companies/acme/sites/acme-hq/inventory/x", sub: "alice", status: 200, identity: user("alice", "site:acme-hq")},
		{name: "superuser action on a site", method: "DELETE", path: "/api/sites/acme-hq/billing/x", sub: "alice", status: 200, identity: user("alice", "site:acme-hq")},
		{name: "scope from a header", method: "GET", path: "/api/stock/x", sub: "alice", headers: map[string]string{"X-Site-Key": "acme-hq"}, status: 200, identity: user("alice", "site:acme-hq")},
		{name: "scope any", method: "GET", path: "/api/reports/x", sub: "alice", status: 200, identity: user("alice", "")},
		{name: "scope unknown", method: "GET", path: "/api/companies/initech/inventory/x", sub: "alice", status: 403, reason: "scope_unknown"},
		{name: "site of another company", method: "GET", path: "/api/companies/acme/sites/globex-lab/inventory/x", sub: "alice", status: 403, reason: "scope_unknown"},
		{name: "scope header missing", method: "GET", path: "/api/stock/x", sub: "alice", status: 403, reason: "scope_unknown"},
		{name: "company inactive", method: "GET", path: "/api/companies/globex/inventory/x", sub: "alice", status: 403, reason: "scope_inactive"},
		{name: "site inactive", method: "GET", path: "/api/companies/acme/sites/acme-depot/inventory/x", sub: "alice", status: 403, reason: "scope_inactive"},
		{name: "site of an inactive company", method: "GET", path: "/api/companies/globex/sites/globex-lab/inventory/x", sub: "alice", status: 403, reason: "scope_inactive"},
		{name: "module unknown", method: "GET", path: "/api/companies/acme/ghost/x", sub: "alice", status: 403, reason: "module_unknown"},
		{name: "module inactive", method: "GET", path: "/api/companies/acme/legacy/x", sub: "alice", status: 403, reason: "module_inactive"},
		{name: "no grant", method: "GET", path: "/api/companies/acme/inventory/x", sub: "carol", status: 403, reason: "permission_denied"},
		{name: "action not granted", method: "DELETE", path: "/api/companies/acme/inventory/x", sub: "alice", status: 403, reason: "permission_denied"},
		{name: "site grant does not cover the company", method: "PUT", path: "/api/companies/acme/inventory/x", sub: "alice", status: 403, reason: "permission_denied"},
		{name: "scope any without grants", method: "GET", path: "/api/reports/x", sub: "carol", status: 403, reason: "permission_denied"},
	}
}

// parityJWT signs an HS256 token for sub.
func parityJWT(t *testing.T, sub, kind string) string {
	t.Helper()
	exp, secret := time.Now().Add(time.Hour), paritySecret
	switch kind {
	case "expired":
		exp = time.Now().Add(-time.Hour)
	case "badsig":
		secret = "another-secret-0123456789abcdefgh"
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp.Unix(), "iat": time.Now().Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runParityTable sends every case through the gateway and checks status,
// reason code and the identity headers: those the upstream saw in proxy
// mode, those of the 200 answer in forward-auth mode (asked as nginx asks,
// with X-Original-Method / X-Original-URI; 400-class reasons are 403 there).
func runParityTable(t *testing.T, g *gateway, forwardAuth bool) {
	f := storetest.Basic()
	for _, c := range parityTable() {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, g.base+c.path, nil)
			if forwardAuth {
				req, err = http.NewRequest("GET", g.base+"/_auth", nil)
				req.Header.Set("X-Original-Method", c.method)
				req.Header.Set("X-Original-URI", c.path)
				if c.status == 400 {
					c.status = 403
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.key != "" {
				tok := c.key
				if _, ok := f.Secrets[c.key]; ok {
					tok = f.Token(c.key)
				}
				if c.headers["X-Use-Bearer"] != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				} else {
					req.Header.Set("X-API-Key", tok)
				}
			}
			if c.sub != "" {
				req.Header.Set("Authorization", "Bearer "+parityJWT(t, c.sub, c.jwtKind))
			}
			for k, v := range c.headers {
				if k != "X-Use-Bearer" {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", c.method, c.path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", c.method, c.path, resp.StatusCode, c.status, body)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id")
			}
			if c.reason != "" {
				var d struct {
					Reason    string `json:"reason"`
					RequestID string `json:"request_id"`
				}
				if err := json.Unmarshal(body, &d); err != nil || d.Reason != c.reason || d.RequestID != resp.Header.Get("X-Request-Id") {
					t.Errorf("%s %s: body %s, want reason %s", c.method, c.path, body, c.reason)
				}
				if got := resp.Header.Get("X-Auth-Type"); got != "" {
					t.Errorf("denial carries X-Auth-Type %q", got)
				}
				return
			}
			if forwardAuth {
				got := map[string]string{}
				for k, v := range resp.Header {
					if strings.HasPrefix(k, "X-Auth-") {
						got[k] = strings.Join(v, ", ")
					}
				}
				if !maps.Equal(got, c.identity) || len(body) != 0 {
					t.Errorf("%s %s: forward-auth answer identity headers %v, body %q; want %v and no body", c.method, c.path, got, body, c.identity)
				}
				return
			}
			var echo demoEchoReply
			if err := json.Unmarshal(body, &echo); err != nil || echo.Upstream == "" {
				t.Fatalf("allowed request did not reach the upstream: %s", body)
			}
			if !maps.Equal(echo.Identity, c.identity) {
				t.Errorf("%s %s: upstream identity headers %v, want %v", c.method, c.path, echo.Identity, c.identity)
			}
			if len(echo.CredentialsForwarded) != 0 && c.key != "" {
				t.Errorf("API key forwarded to the upstream: %v", echo.CredentialsForwarded)
			}
		})
	}
}

// parityEnv is the configuration both stores share: the routes above, an
// echo upstream and the HS256 secret.
func parityEnv(t *testing.T) map[string]string {
	t.Helper()
	up := httptest.NewServer(demoEcho("X-Auth-", "X-API-Key"))
	t.Cleanup(up.Close)
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(parityRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"SCOPEGATE_ROUTES_FILE":      routes,
		"SCOPEGATE_UPSTREAM_URL":     up.URL,
		"SCOPEGATE_JWT_HS256_SECRET": paritySecret,
	}
}

// parityDB returns a fresh migrated database filled with storetest.Basic as
// SQL.
func parityDB(t *testing.T) string {
	t.Helper()
	return fixtureDB(t, storetest.Basic())
}

// fixtureDB returns a fresh migrated database filled with f as SQL.
func fixtureDB(t *testing.T, f storetest.Fixture) string {
	t.Helper()
	dsn := pgtest.NewDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, f.SQL()); err != nil {
		t.Fatalf("inserting the fixture: %v", err)
	}
	return dsn
}

// fixtureStoreFile writes f as a file store to a temporary directory and
// returns its path.
func fixtureStoreFile(t *testing.T, f storetest.Fixture) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.yaml")
	if err := os.WriteFile(path, f.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// onBothStores runs run as two subtests, each with a fresh parityEnv:
// "file", with f as the file store, and "postgres", with f in a fresh
// database. kind is the subtest's name.
func onBothStores(t *testing.T, f storetest.Fixture, run func(t *testing.T, env map[string]string, kind string)) {
	t.Run("file", func(t *testing.T) {
		env := parityEnv(t)
		env["SCOPEGATE_STORE_FILE"] = fixtureStoreFile(t, f)
		run(t, env, "file")
	})
	t.Run("postgres", func(t *testing.T) {
		env := parityEnv(t)
		env["SCOPEGATE_DATABASE_URL"] = fixtureDB(t, f)
		run(t, env, "postgres")
	})
}

// TestStoreParityDecisions runs one decision table through the real serve,
// once on the declarative file store (storetest.Basic as YAML) and once on
// PostgreSQL (the same fixture as SQL): both must give the same statuses,
// reason codes and identity headers.
func TestStoreParityDecisions(t *testing.T) {
	onBothStores(t, storetest.Basic(), func(t *testing.T, env map[string]string, _ string) { runParityModes(t, env) })
}

// runParityModes runs the table through a fresh gateway (fresh rate-limit
// buckets) in proxy mode and another in forward-auth mode.
func runParityModes(t *testing.T, env map[string]string) {
	t.Run("proxy", func(t *testing.T) {
		g := startGateway(t, env)
		runParityTable(t, g, false)
		g.stop(t)
	})
	t.Run("forward-auth", func(t *testing.T) {
		g := startGateway(t, env)
		runParityTable(t, g, true)
		g.stop(t)
	})
}

// TestStoreParityKeysThroughServe: a token printed by `keys create` works
// through serve on PostgreSQL (picked up by the change feed); after `keys
// rotate` the old token is 401 api_key_invalid within 1 s and the new one
// works; after `keys revoke` the new one is 401 api_key_inactive.
func TestStoreParityKeysThroughServe(t *testing.T) {
	env := parityEnv(t)
	dsn := parityDB(t)
	env["SCOPEGATE_DATABASE_URL"] = dsn
	g := startGateway(t, env)

	keys := func(args ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		if code := run(append([]string{"keys"}, args...), &out, &errOut); code != exitOK {
			t.Fatalf("keys %v: exit %d: %s", args, code, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	get := func(tok string) (int, string) {
		req, _ := http.NewRequest("GET", g.base+"/api/orders", nil)
		req.Header.Set("X-API-Key", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d struct {
			Reason string `json:"reason"`
		}
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &d)
		return resp.StatusCode, d.Reason
	}
	// within polls until tok gives status/reason, failing after 1 s.
	within := func(what, tok string, status int, reason string) {
		t.Helper()
		start := time.Now()
		for {
			s, r := get(tok)
			if s == status && r == reason {
				t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("%s: still %d %s after 1 s, want %d %s", what, s, r, status, reason)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// keys runs in this process with the same SCOPEGATE_DATABASE_URL.
	t.Setenv("SCOPEGATE_DATABASE_URL", dsn)
	first := keys("create", "--client-key", "cli-made", "--name", "Made by keys create", "--path", "GET /api/**")
	if !strings.HasPrefix(first, "cli-made.") || strings.Contains(first, "\n") {
		t.Fatalf("keys create printed %q", first)
	}
	within("created token works", first, 200, "")

	second := keys("rotate", "cli-made")
	if second == first || !strings.HasPrefix(second, "cli-made.") {
		t.Fatalf("keys rotate printed %q", second)
	}
	within("rotated-away token refused", first, 401, "api_key_invalid")
	within("new token works", second, 200, "")

	keys("revoke", "cli-made")
	within("revoked token refused", second, 401, "api_key_inactive")

	if strings.Contains(g.logs.String(), second[len("cli-made."):]) || strings.Contains(g.logs.String(), first[len("cli-made."):]) {
		t.Errorf("a secret reached the gateway log")
	}
}
