package proxy

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/testproc"
)

// nginxBinary finds nginx on PATH or at /usr/sbin/nginx. Without it the
// test skips loudly, and fails under CI=true.
func nginxBinary(t testing.TB) string {
	t.Helper()
	p := testproc.Find([]string{"nginx"}, "/usr/sbin/nginx")
	if p == "" {
		testproc.SkipOrFail(t, "nginx not found on PATH or at /usr/sbin/nginx; the nginx forward-auth tests did not run")
	}
	return p
}

// renderRecipe copies the shipped configs/<recipe>/ files named in repl to
// dst, each with its old strings replaced by the new ones (the addresses).
// The test fails when a shipped file no longer holds a string to replace.
func renderRecipe(t testing.TB, recipe, dst string, repl map[string]map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, r := range repl {
		conf := string(readConfig(t, filepath.Join(recipe, name)))
		for old, new := range r {
			if !strings.Contains(conf, old) {
				t.Fatalf("configs/%s/%s no longer contains %q (update the test template)", recipe, name, old)
			}
			conf = strings.Replace(conf, old, new, 1)
		}
		if err := os.WriteFile(filepath.Join(dst, name), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkProxiedDenial checks a denial that came through a proxy running a
// shipped recipe: scopegate's status and reason, none of the fields leaks
// finds, and an X-Request-Id equal to the body's request_id.
func checkProxiedDenial(t *testing.T, r *rawResponse, status int, reason string, leaks func(http.Header) []string) {
	t.Helper()
	if r.status != status || r.reason() != reason {
		t.Fatalf("status %d %s, want %d %s", r.status, r.body, status, reason)
	}
	if l := leaks(r.header); len(l) != 0 {
		t.Errorf("the client got %q", l)
	}
	var body struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.RequestID == "" || r.header.Get("X-Request-Id") != body.RequestID {
		t.Errorf("X-Request-Id %q, body %s", r.header.Get("X-Request-Id"), r.body)
	}
}

// nginxLeaks lists what a denial through the shipped nginx recipe must not
// carry: X-Scopegate-* and a Server other than a bare "nginx".
func nginxLeaks(h http.Header) []string {
	return proxyOnlyFields(h, func(v []string) bool { return v[0] == "nginx" })
}

// proxyOnlyFields lists the fields of h meant for a proxy alone
// (X-Scopegate-*) and a Server field whose values serverOK refuses.
func proxyOnlyFields(h http.Header, serverOK func(v []string) bool) []string {
	var out []string
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-scopegate-") || (strings.EqualFold(k, "Server") && !serverOK(v)) {
			out = append(out, k+": "+strings.Join(v, ","))
		}
	}
	return out
}

// startNginx runs the shipped configs/nginx/ (nginx.conf, which includes
// scopegate-http.conf and scopegate.conf) under a real nginx, copied to a
// temporary directory with only the addresses replaced (the listener on a
// free loopback port, scopegate's and the app's upstreams). That directory
// is the prefix (-p), so the pid and temporary files the shipped file puts
// under it land there; nginx's output (error log, access log) goes to a
// file there, shown if the test fails. It stops nginx (by PID) when the
// test ends and returns the address nginx listens on.
func startNginx(t testing.TB, scopegateAddr, appAddr string) string {
	t.Helper()
	bin := nginxBinary(t)
	addr := testproc.FreeAddr(t)
	dir := t.TempDir()
	renderRecipe(t, "nginx", dir, map[string]map[string]string{
		"nginx.conf": {
			"listen 8000;": "listen " + addr + ";",
		},
		"scopegate-http.conf": {
			"server 127.0.0.1:8080;": "server " + scopegateAddr + ";",
			"server 127.0.0.1:8081;": "server " + appAddr + ";",
		},
		"scopegate.conf": {},
	})
	confPath := filepath.Join(dir, "nginx.conf")
	args := []string{"-e", "stderr", "-p", dir + "/", "-c", confPath}
	if out, err := exec.Command(bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	// SIGINT: a fast shutdown of this nginx only.
	p := testproc.Run(t, "nginx", exec.Command(bin, args...), filepath.Join(dir, "nginx.out"), os.Interrupt, 5*time.Second)
	testproc.WaitReady(t, p, 5*time.Second, 20*time.Millisecond, testproc.Dials(addr))
	return addr
}

// TestNginxForwardAuth runs the shipped configs/nginx/ under a real
// nginx in front of scopegate's /_auth and an echo app.
func TestNginxForwardAuth(t *testing.T) {
	nginxBinary(t)
	fix := newEnv(t, envOptions{noUpstream: true}).store
	fs := &failingStore{Store: fix}
	e := newEnv(t, envOptions{store: fs, noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startEcho(t)
	ngx := startNginx(t, e.addr, app.addr)
	get := func(raw string) *rawResponse { return doRaw(t, netip.Addr{}, ngx, raw) }
	alice := "Bearer " + jwtFor(t, "alice", time.Hour)

	t.Run("allow api key with identity headers, spoofed ones replaced", func(t *testing.T) {
		r := get(reqText("GET", "/api/things?q=1", "X-API-Key", e.fix.Token("app"), "X-Auth-Type", "admin", "X-Auth-User-Sub", "root", "X-Auth-Scope", "company:evil", "X_Auth_Client_Id", "x", "X-Request-Id", "nginx-test-1"))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		ec := echoOf(t, r)
		for k, v := range map[string]string{"X-Auth-Type": "api_key", "X-Auth-Client-Key": "app", "X-Auth-Client-Id": "55555555-0000-4000-8000-000000000001", "X-Auth-User-Sub": "", "X-Auth-Scope": "", "X-Request-Id": "nginx-test-1", "X-Original-Uri": ""} {
			if g := ec.header(k); g != v {
				t.Errorf("app got %s = %q, want %q", k, g, v)
			}
		}
		if ec.RequestURI != "/api/things?q=1" {
			t.Errorf("app got %q", ec.RequestURI)
		}
		if r.header.Get("X-Request-Id") != "nginx-test-1" {
			t.Errorf("client X-Request-Id %q", r.header.Get("X-Request-Id"))
		}
	})
	t.Run("allow user with scope", func(t *testing.T) {
		r := get(reqText("PUT", "/api/companies/acme/sites/acme-hq/x", "Authorization", alice, "Content-Length", "0"))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		ec := echoOf(t, r)
		if ec.header("X-Auth-User-Sub") != "alice" || ec.header("X-Auth-Scope") != "site:acme-hq" || ec.header("X-Auth-Type") != "jwt" {
			t.Errorf("identity: %v", ec.Headers)
		}
		if g := ec.header("Authorization"); g != alice {
			t.Errorf("app got Authorization %q, want the JWT", g)
		}
	})
	t.Run("method and URL overrides never reach the app", func(t *testing.T) {
		hdrs := []string{"X-API-Key", e.fix.Token("app")}
		for _, h := range overrideHeaders {
			hdrs = append(hdrs, h, "DELETE")
		}
		r := get(reqText("GET", "/api/things", hdrs...))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		ec := echoOf(t, r)
		for _, h := range overrideHeaders {
			if g := ec.header(h); g != "" {
				t.Errorf("app got %s: %q", h, g)
			}
		}
	})
	// SCOPEGATE_STRIP_CREDENTIALS through nginx: the Authorization header is
	// removed when it carried the API key, in either scheme, and kept when
	// the key came in X-API-Key.
	for _, c := range []struct {
		name, authz, apiKey, wantAuthz string
	}{
		{"api key as Bearer", "Bearer " + e.fix.Token("app"), "", ""},
		{"api key as ApiKey", "ApiKey " + e.fix.Token("app"), "", ""},
		{"api key in X-API-Key, Authorization kept", "Basic dXNlcjpwdw==", e.fix.Token("app"), "Basic dXNlcjpwdw=="},
	} {
		t.Run("strip credentials: "+c.name, func(t *testing.T) {
			hdrs := []string{"Authorization", c.authz}
			if c.apiKey != "" {
				hdrs = append(hdrs, "X-API-Key", c.apiKey)
			}
			r := get(reqText("GET", "/api/things", hdrs...))
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			ec := echoOf(t, r)
			if g := ec.header("Authorization"); g != c.wantAuthz {
				t.Errorf("app got Authorization %q, want %q", g, c.wantAuthz)
			}
			if g := ec.header("X-API-Key"); g != "" || ec.header("X-Auth-Type") != "api_key" {
				t.Errorf("app got X-API-Key %q, X-Auth-Type %q", g, ec.header("X-Auth-Type"))
			}
		})
	}
	denials := []struct {
		name   string
		raw    string
		status int
		reason string
	}{
		{"401 credentials_missing", reqText("GET", "/api/things"), 401, "credentials_missing"},
		{"401 api_key_invalid", reqText("GET", "/api/things", "X-API-Key", "app.wrong"), 401, "api_key_invalid"},
		{"401 token_invalid", reqText("GET", "/api/me", "Authorization", alice[:len(alice)-4]+"AAAA"), 401, "token_invalid"},
		{"403 path_not_allowed", reqText("POST", "/api/things", "X-API-Key", e.fix.Token("app"), "Content-Length", "0"), 403, "path_not_allowed"},
		{"403 permission_denied", reqText("DELETE", "/api/companies/acme/sites/acme-hq/x", "Authorization", alice), 403, "permission_denied"},
		{"403 path_invalid", reqText("GET", "/api/%2e%2e/things", "X-API-Key", e.fix.Token("app")), 403, "path_invalid"},
		{"spoofed X-Original-URI has no effect", reqText("GET", "/other", "X-API-Key", e.fix.Token("app"), "X-Original-URI", "/api/things", "X-Original-Method", "GET", "X-Forwarded-Uri", "/api/things", "X-Forwarded-Method", "GET"), 403, "no_route"},
		{"spoofed X-Original-Method has no effect", reqText("POST", "/api/things", "X-API-Key", e.fix.Token("app"), "X-Original-Method", "GET", "Content-Length", "0"), 403, "path_not_allowed"},
	}
	for _, c := range denials {
		t.Run(c.name, func(t *testing.T) {
			r := get(c.raw)
			checkProxiedDenial(t, r, c.status, c.reason, nginxLeaks)
			if c.reason == "token_invalid" {
				if wa := r.header.Values("WWW-Authenticate"); len(wa) != 1 || wa[0] != `Bearer error="invalid_token"` {
					t.Errorf("WWW-Authenticate %q", wa)
				}
			}
		})
	}
	t.Run("429 with Retry-After", func(t *testing.T) {
		tok := e.fix.Token("limited")
		for i := 0; i < 2; i++ {
			r := get(reqText("GET", "/api/x", "X-API-Key", tok))
			if r.status != 200 || r.header.Get("RateLimit-Limit") != "2" {
				t.Fatalf("request %d: %d %v", i, r.status, r.header)
			}
		}
		r := get(reqText("GET", "/api/x", "X-API-Key", tok))
		if r.status != 429 || r.reason() != "rate_limited" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After %q", ra)
		}
		if r.header.Get("RateLimit-Remaining") != "0" || !strings.HasPrefix(r.header.Get("RateLimit"), `"per-minute";r=0;t=`) {
			t.Errorf("RateLimit headers: %v", r.header)
		}
	})
	t.Run("503 store_unavailable", func(t *testing.T) {
		fs.down.Store(true)
		defer fs.down.Store(false)
		r := get(reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")))
		if r.status != 503 || r.reason() != "store_unavailable" {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
}

// TestReasonCodesThroughNginx runs the reason-code table end to end:
// client → real nginx (the shipped configs/nginx/) → scopegate /_auth
// on the real PostgreSQL store → echo app. Cases that need a client address
// other than loopback (nginx sends $remote_addr) are left to the direct
// forward-auth tests.
func TestReasonCodesThroughNginx(t *testing.T) {
	nginxBinary(t)
	s, _ := openPostgresStore(t, storetest.Basic())
	e := newEnv(t, envOptions{store: s, noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startEcho(t)
	ngx := startNginx(t, e.addr, app.addr)
	for _, c := range reasonCases(t, e) {
		if c.clientIP != "" || c.xff != "" || c.nginxDrops {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			method := c.method
			if method == "" {
				method = "GET"
			}
			h := c.headers
			if method != "GET" && method != "HEAD" {
				h = append(append([]string(nil), h...), "Content-Length", "0")
			}
			r := doRaw(t, netip.Addr{}, ngx, reqText(method, c.target, h...))
			if c.nginxRejects {
				if r.status != 400 {
					t.Errorf("nginx answered %d, want its own 400", r.status)
				}
				return
			}
			check(t, c, "nginx_e2e", r, e)
		})
	}
}

// TestNginxRecipeEverySpelling: through a real nginx running the shipped
// configs/nginx/, every spelling of every identity field (case, '_' for
// '-', two lines) and of the credential fields and overrides it removes
// (same spellings) is gone from what the app gets, which carries
// scopegate's identity fields only. nginx drops the '_' names
// (underscores_in_headers off); proxy_set_header replaces every line of
// the others, whatever their case. (A prefixed name that is none of the
// seven, X-Auth-Role, passes: nginx cannot remove by prefix.)
func TestNginxRecipeEverySpelling(t *testing.T) {
	nginxBinary(t)
	e := newEnv(t, envOptions{noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startEcho(t)
	ngx := startNginx(t, e.addr, app.addr)
	for _, underscored := range []bool{false, true} {
		r := doRaw(t, netip.Addr{}, ngx, reqText("GET", "/api/things", recipeSpoofHeaders(e, underscored)...))
		if r.status != 200 {
			t.Fatalf("underscored %v: status %d: %s", underscored, r.status, r.body)
		}
		checkRecipeEcho(t, "nginx", echoOf(t, r), false)
	}
}

// TestNginxRecipeDropsForwardingFields: SPEC §5's forwarding fields that
// only a trusted proxy may set, sent by the client (any case, two lines),
// do not reach the app behind the shipped configs/nginx/; nginx sets
// X-Forwarded-For/-Proto/-Host itself.
func TestNginxRecipeDropsForwardingFields(t *testing.T) {
	nginxBinary(t)
	e := newEnv(t, envOptions{noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startEcho(t)
	ngx := startNginx(t, e.addr, app.addr)
	h := []string{"X-API-Key", e.fix.Token("app"), "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.test"}
	for _, n := range untrustedForwarding {
		h = append(h, n, "on", strings.ToLower(n), "1.2.3.4")
	}
	r := doRaw(t, netip.Addr{}, ngx, reqText("GET", "/api/things", h...))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	for _, n := range untrustedForwarding {
		if got := ec.Headers[http.CanonicalHeaderKey(n)]; len(got) != 0 {
			t.Errorf("the app got %s: %q", n, got)
		}
	}
	for k, v := range map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "gw.test"} {
		if got := ec.Headers[k]; len(got) != 1 || got[0] != v {
			t.Errorf("the app got %s = %q, want [%s]", k, got, v)
		}
	}
}

// TestNginxAnswerHygiene: behind the shipped configs/nginx/, a denial
// carries scopegate's status, reason and X-Request-Id (in the header and
// the rebuilt body) and none of the fields meant for nginx
// (X-Scopegate-Reason, X-Scopegate-Error) nor scopegate's or nginx's
// version in Server; an allowed answer carries the X-Request-Id the app
// received.
func TestNginxAnswerHygiene(t *testing.T) {
	nginxBinary(t)
	e := newEnv(t, envOptions{noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := startEcho(t)
	ngx := startNginx(t, e.addr, app.addr)
	for _, c := range []struct {
		name    string
		headers []string
		status  int
		reason  string
	}{
		{"no credential", nil, 401, "credentials_missing"},
		{"unknown key", []string{"X-API-Key", "sg_nope"}, 401, "api_key_invalid"},
		{"no route", []string{"X-API-Key", e.fix.Token("app")}, 403, "no_route"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := "/api/things"
			if c.reason == "no_route" {
				path = "/elsewhere"
			}
			r := doRaw(t, netip.Addr{}, ngx, reqText("GET", path, c.headers...))
			checkProxiedDenial(t, r, c.status, c.reason, nginxLeaks)
		})
	}
	t.Run("allowed", func(t *testing.T) {
		r := doRaw(t, netip.Addr{}, ngx, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		id := r.header.Get("X-Request-Id")
		if got := echoOf(t, r).header("X-Request-Id"); id == "" || got != id {
			t.Errorf("the client got X-Request-Id %q, the app %q", id, got)
		}
		if l := nginxLeaks(r.header); len(l) != 0 {
			t.Errorf("the client got %q", l)
		}
	})
}
