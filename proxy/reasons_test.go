package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// reasonCase is one request with the outcome SPEC §3–5 prescribe.
type reasonCase struct {
	name     string
	method   string
	target   string   // path and query as the client sent it
	headers  []string // name, value pairs the client sent
	clientIP string   // "" : 127.0.0.1 (direct); else the request reaches the gateway through the trusted proxy
	xff      string   // X-Forwarded-For the trusted proxy sends ("" : clientIP)
	status   int
	reason   string            // "" : allowed
	identity map[string]string // identity headers expected on allow
	// nginxRejects: nginx itself answers 400 before asking scopegate.
	nginxRejects bool
	// nginxDrops: a header of the case never passes nginx
	// (underscores_in_headers off), so the case means nothing there.
	nginxDrops bool
}

// reasonCases returns the table; tokens come from the environment.
func reasonCases(t testing.TB, e *env) []reasonCase {
	app, office := e.fix.Token("app"), e.fix.Token("office")
	alice := "Bearer " + jwtFor(t, "alice", time.Hour)
	aliceID := "44444444-0000-4000-8000-000000000001"
	return []reasonCase{
		{name: "public route without credential", target: "/healthz", status: 200},
		{name: "public route ignores a bad credential", target: "/healthz", headers: []string{"X-API-Key", "app.wrong"}, status: 200},
		{name: "credentials_missing", target: "/api/things", status: 401, reason: "credentials_missing"},
		{name: "api key in query is ignored", target: "/api/things?api_key=" + app + "&X-API-Key=" + app, status: 401, reason: "credentials_missing"},
		{name: "api_key_invalid wrong secret", target: "/api/things", headers: []string{"X-API-Key", "app.wrong"}, status: 401, reason: "api_key_invalid"},
		{name: "api_key_invalid unknown client", target: "/api/things", headers: []string{"X-API-Key", "nobody.secret"}, status: 401, reason: "api_key_invalid"},
		{name: "api_key_invalid malformed", target: "/api/things", headers: []string{"X-API-Key", "nodot"}, status: 401, reason: "api_key_invalid"},
		{name: "api_key_inactive suspended", target: "/api/things", headers: []string{"X-API-Key", e.fix.Token("suspended")}, status: 401, reason: "api_key_inactive"},
		{name: "api_key_inactive revoked", target: "/api/things", headers: []string{"X-API-Key", e.fix.Token("revoked")}, status: 401, reason: "api_key_inactive"},
		{name: "api_key_expired", target: "/api/things", headers: []string{"X-API-Key", e.fix.Token("expired")}, status: 401, reason: "api_key_expired"},
		{name: "ip_not_allowed", target: "/api/things", headers: []string{"X-API-Key", office}, status: 403, reason: "ip_not_allowed"},
		{name: "origin_not_allowed", target: "/api/things", clientIP: "10.1.2.3", headers: []string{"X-API-Key", office, "Origin", "https://evil.example.com"}, status: 403, reason: "origin_not_allowed"},
		{name: "allowed office key from its network and origin", target: "/api/things", clientIP: "10.1.2.3", headers: []string{"X-API-Key", office, "Origin", "https://app.example.com:443"}, status: 200,
			identity: map[string]string{"X-Auth-Type": "api_key", "X-Auth-Client-Key": "office", "X-Auth-Client-Id": "55555555-0000-4000-8000-000000000003"}},
		{name: "path_not_allowed", method: "POST", target: "/api/things", headers: []string{"X-API-Key", app}, status: 403, reason: "path_not_allowed"},
		{name: "allowed api key", target: "/api/things?x=1", headers: []string{"X-API-Key", app}, status: 200,
			identity: map[string]string{"X-Auth-Type": "api_key", "X-Auth-Client-Key": "app", "X-Auth-Client-Id": "55555555-0000-4000-8000-000000000001", "X-Auth-User-Sub": "", "X-Auth-Scope": ""}},
		{name: "allowed api key in Authorization Bearer", target: "/api/things", headers: []string{"Authorization", "Bearer " + app}, status: 200,
			identity: map[string]string{"X-Auth-Client-Key": "app"}},
		{name: "allowed api key pair", target: "/api/things", headers: []string{"X-Client-Key", "app", "X-API-Key", e.fix.Secrets["app"]}, status: 200,
			identity: map[string]string{"X-Auth-Client-Key": "app"}},
		{name: "token_expired", target: "/api/me", headers: []string{"Authorization", "Bearer " + jwtFor(t, "alice", -time.Hour)}, status: 401, reason: "token_expired"},
		{name: "token_invalid bad signature", target: "/api/me", headers: []string{"Authorization", alice[:len(alice)-4] + "AAAA"}, status: 401, reason: "token_invalid"},
		{name: "user_unknown", target: "/api/me", headers: []string{"Authorization", "Bearer " + jwtFor(t, "nobody", time.Hour)}, status: 403, reason: "user_unknown"},
		{name: "user_inactive", target: "/api/me", headers: []string{"Authorization", "Bearer " + jwtFor(t, "bob", time.Hour)}, status: 403, reason: "user_inactive"},
		{name: "allowed user", target: "/api/me", headers: []string{"Authorization", alice}, status: 200,
			identity: map[string]string{"X-Auth-Type": "jwt", "X-Auth-User-Sub": "alice", "X-Auth-User-Id": aliceID, "X-Auth-User-Email": "alice@example.com", "X-Auth-Scope": "", "X-Auth-Client-Key": ""}},
		{name: "allowed user in the JWT cookie", target: "/api/me", headers: []string{"Cookie", "other=1; sg_session=" + alice[len("Bearer "):]}, status: 200,
			identity: map[string]string{"X-Auth-Type": "jwt", "X-Auth-User-Sub": "alice"}},
		{name: "API key wins over a JWT cookie", target: "/api/me", headers: []string{"X-API-Key", app, "Cookie", "sg_session=" + alice[len("Bearer "):]}, status: 401, reason: "credential_not_accepted"},
		{name: "no_route", target: "/other", headers: []string{"X-API-Key", app}, status: 403, reason: "no_route"},
		{name: "credential_not_accepted", target: "/api/me", headers: []string{"X-API-Key", app}, status: 401, reason: "credential_not_accepted"},
		{name: "scope_unknown site", target: "/api/companies/acme/sites/nosuch/x", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		{name: "scope_unknown site of another company", target: "/api/companies/acme/sites/globex-lab/x", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		{name: "scope_unknown missing header", target: "/api/legacy/x", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		{name: "scope_unknown repeated header", target: "/api/legacy/x", headers: []string{"Authorization", alice, "X-Company-Key", "acme", "X-Company-Key", "globex"}, status: 403, reason: "scope_unknown"},
		{name: "scope_unknown header with an underscore spelling too", target: "/api/legacy/x", headers: []string{"Authorization", alice, "X-Company-Key", "acme", "X_Company_Key", "globex"}, status: 403, reason: "scope_unknown", nginxDrops: true},
		{name: "scope_unknown repeated query parameter", target: "/api/stock/items?site=acme-hq&site=globex-lab", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		// Keys an upstream framework reads as "site" make the value ambiguous.
		{name: "scope_unknown query parameter as an array too", target: "/api/stock/items?site=acme-hq&site[]=globex-lab", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		{name: "scope_unknown query parameter with a leading space too", target: "/api/stock/items?site=acme-hq&%20site=globex-lab", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		{name: "scope_unknown query parameter with a NUL too", target: "/api/stock/items?site=acme-hq&site%00x=globex-lab", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		{name: "scope_unknown query parameter in upper case too", target: "/api/stock/items?site=acme-hq&SITE=globex-lab", headers: []string{"Authorization", alice}, status: 403, reason: "scope_unknown"},
		{name: "scope_inactive site", target: "/api/companies/acme/sites/acme-depot/x", headers: []string{"Authorization", alice}, status: 403, reason: "scope_inactive"},
		{name: "scope_inactive company", target: "/api/companies/globex/report", headers: []string{"Authorization", alice}, status: 403, reason: "scope_inactive"},
		{name: "module_unknown", target: "/api/ghost/x", headers: []string{"Authorization", alice}, status: 403, reason: "module_unknown"},
		{name: "module_inactive", target: "/api/legacy/x", headers: []string{"Authorization", alice, "X-Company-Key", "acme"}, status: 403, reason: "module_inactive"},
		{name: "permission_denied no grants", target: "/api/companies/acme/sites/acme-hq/x", headers: []string{"Authorization", "Bearer " + jwtFor(t, "carol", time.Hour)}, status: 403, reason: "permission_denied"},
		{name: "permission_denied action", method: "DELETE", target: "/api/companies/acme/sites/acme-hq/x", headers: []string{"Authorization", alice}, status: 403, reason: "permission_denied"},
		{name: "allowed site grant", method: "PUT", target: "/api/companies/acme/sites/acme-hq/x", headers: []string{"Authorization", alice}, status: 200,
			identity: map[string]string{"X-Auth-Type": "jwt", "X-Auth-User-Sub": "alice", "X-Auth-Scope": "site:acme-hq"}},
		{name: "allowed scope named by id reports the key", target: "/api/companies/acme/sites/33333333-0000-4000-8000-000000000001/x", headers: []string{"Authorization", alice}, status: 200,
			identity: map[string]string{"X-Auth-Scope": "site:acme-hq"}},
		{name: "allowed scope from query", target: "/api/stock/items?site=acme-hq", headers: []string{"Authorization", alice}, status: 200,
			identity: map[string]string{"X-Auth-Scope": "site:acme-hq"}},
		{name: "allowed company scope", target: "/api/companies/acme/invoices", headers: []string{"Authorization", alice}, status: 403, reason: "permission_denied"},
		{name: "path_invalid dot-dot encoded", target: "/api/%2e%2E/things", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid"},
		{name: "path_invalid dot segment", target: "/api/./things", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid"},
		{name: "path_invalid empty segment", target: "//api/things", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid"},
		{name: "path_invalid encoded slash", target: "/api/a%2Fb", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid"},
		{name: "path_invalid encoded NUL", target: "/api/a%00b", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid", nginxRejects: true},
		{name: "path_invalid backslash", target: "/api/a%5Cb", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid"},
		{name: "path_invalid invalid UTF-8", target: "/api/%ff%fe", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid"},
		// nginx passes "#..." on in $request_uri: checking the part before it
		// would authorize /api/things for an upstream that reads /other.
		{name: "path_invalid fragment", target: "/api/things#/../../other", headers: []string{"X-API-Key", app}, status: 400, reason: "path_invalid"},
		{name: "allowed encoded slash route", target: "/files/a%2Fb/c", headers: []string{"Authorization", alice}, status: 200},
		// On that route an upstream that decodes %2F would resolve these
		// dots past what the rules matched.
		{name: "path_invalid dot pieces between encoded slashes", target: "/files/a%2F..%2F..%2Fsecret/c", headers: []string{"Authorization", alice}, status: 400, reason: "path_invalid"},
		{name: "forwarded_invalid", target: "/api/things", clientIP: "10.1.2.3", xff: "10.1.2.3, not-an-ip", headers: []string{"X-API-Key", app}, status: 400, reason: "forwarded_invalid"},
	}
}

// modes are the front ends every case runs through.
var modes = []string{"proxy", "traefik", "nginx", "envoy"}

// send runs c through mode against e.
func (e *env) send(c reasonCase, mode string) *rawResponse {
	e.t.Helper()
	method := c.method
	if method == "" {
		method = "GET"
	}
	clientIP := c.clientIP
	if clientIP == "" {
		clientIP = "127.0.0.1"
	}
	xff := c.xff
	if xff == "" {
		xff = clientIP
	}
	h := append([]string(nil), c.headers...)
	switch mode {
	case "proxy":
		if c.clientIP == "" && c.xff == "" {
			return e.do(directPeer, reqText(method, c.target, h...))
		}
		h = append(h, "X-Forwarded-For", xff)
		return e.do(trustedPeer, reqText(method, c.target, h...))
	case "traefik":
		h = append(h, "X-Forwarded-Method", method, "X-Forwarded-Uri", c.target, "X-Forwarded-Host", "gw.test", "X-Forwarded-Proto", "http", "X-Forwarded-For", xff)
		return e.do(trustedPeer, reqText("GET", "/_auth", h...))
	case "nginx":
		h = append(h, "X-Original-Method", method, "X-Original-URI", c.target, "X-Forwarded-For", xff)
		return e.do(trustedPeer, reqText("GET", "/_auth", h...))
	case "envoy":
		h = append(h, "X-Forwarded-For", xff)
		return e.do(trustedPeer, reqText(method, "/_auth/envoy"+c.target, h...))
	}
	e.t.Fatalf("unknown mode %q", mode)
	return nil
}

// check asserts status, reason, the denial body shape and headers.
func check(t *testing.T, c reasonCase, mode string, r *rawResponse, e *env) {
	t.Helper()
	fa := mode != "proxy"
	viaNginx := mode == "nginx_e2e" // client → nginx → /_auth → app
	want := c.status
	if fa && want == 400 {
		want = 403 // forward-auth answers the 400-class denials 403
	}
	if r.status != want {
		t.Fatalf("%s %s: status %d (body %s), want %d", mode, c.name, r.status, r.body, want)
	}
	rid := r.header.Get("X-Request-Id")
	if rid == "" {
		t.Errorf("no X-Request-Id")
	}
	if c.reason != "" {
		if got := r.reason(); got != c.reason {
			t.Errorf("reason %q, want %q (body %s)", got, c.reason, r.body)
		}
		if !strings.Contains(string(r.body), `"request_id":"`+rid+`"`) || !strings.Contains(string(r.body), `"error":"`) {
			t.Errorf("denial body %s lacks error or request_id %q", r.body, rid)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		wa := r.header.Get("WWW-Authenticate")
		if tok := c.reason == "token_expired" || c.reason == "token_invalid"; tok != (wa == `Bearer error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q for %s", wa, c.reason)
		}
		if fa && !viaNginx && r.header.Get("X-Scopegate-Reason") != c.reason {
			t.Errorf("X-Scopegate-Reason %q", r.header.Get("X-Scopegate-Reason"))
		}
		if r.header.Get("X-Auth-Type") != "" {
			t.Errorf("identity header on a denial")
		}
		return
	}
	var got func(string) string
	if fa && !viaNginx {
		if len(r.body) != 0 {
			t.Errorf("forward-auth allow has a body: %s", r.body)
		}
		got = r.header.Get
	} else {
		ec := echoOf(t, r)
		if ec.RequestURI != c.target {
			t.Errorf("upstream got %q, want the raw target %q", ec.RequestURI, c.target)
		}
		if ec.header("X-Request-Id") != rid {
			t.Errorf("upstream X-Request-Id %q, want %q", ec.header("X-Request-Id"), rid)
		}
		if ec.header("X-API-Key") != "" || ec.header("X-Client-Key") != "" {
			t.Errorf("credential forwarded: %v", ec.Headers)
		}
		got = ec.header
	}
	for k, v := range c.identity {
		if g := got(k); g != v {
			t.Errorf("%s: %q, want %q", k, g, v)
		}
	}
}

// TestReasonCodes runs every reason code of SPEC §3–5 (and allowed cases)
// through the reverse proxy and the three forward-auth front ends.
func TestReasonCodes(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, c := range reasonCases(t, e) {
		for _, mode := range modes {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				r := e.send(c, mode)
				check(t, c, mode, r, e)
			})
		}
	}
}

// TestForwardedUntrusted: every forward-auth path answers 403
// forwarded_untrusted to a peer that is not a trusted proxy, whatever it
// sends.
func TestForwardedUntrusted(t *testing.T) {
	e := newEnv(t, envOptions{})
	app := e.fix.Token("app")
	for _, target := range []string{"/_auth", "/_auth?x=1", "/_auth/envoy/api/things", "/_auth/envoy", "/_auth/other"} {
		t.Run(target, func(t *testing.T) {
			r := e.do(directPeer, reqText("GET", target, "X-API-Key", app, "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/things", "X-Original-URI", "/api/things", "X-Original-Method", "GET"))
			if r.status != 403 || r.reason() != "forwarded_untrusted" {
				t.Fatalf("status %d reason %q, want 403 forwarded_untrusted", r.status, r.reason())
			}
		})
	}
}

// TestForwardAuthInputs covers forward-auth requests with missing or
// conflicting original-request headers.
func TestForwardAuthInputs(t *testing.T) {
	e := newEnv(t, envOptions{})
	app := e.fix.Token("app")
	cases := []struct {
		name    string
		headers []string
		status  int
		reason  string
	}{
		{"no original URI", []string{"X-API-Key", app, "X-Forwarded-Method", "GET"}, 403, "forwarded_invalid"},
		{"no original method", []string{"X-API-Key", app, "X-Original-URI", "/api/things"}, 403, "forwarded_invalid"},
		{"conflicting conventions", []string{"X-API-Key", app, "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/things", "X-Original-Method", "GET", "X-Original-URI", "/api/admin"}, 403, "forwarded_invalid"},
		{"agreeing conventions", []string{"X-API-Key", app, "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/things", "X-Original-Method", "GET", "X-Original-URI", "/api/things"}, 200, ""},
		{"absolute original URL", []string{"X-API-Key", app, "X-Original-Method", "GET", "X-Original-URI", "http://gw.test/api/things?q=1"}, 200, ""},
		{"original method decides", []string{"X-API-Key", app, "X-Original-Method", "POST", "X-Original-URI", "/api/things"}, 403, "path_not_allowed"},
		// A proxy sets each once: a second line came from its client.
		{"repeated original URI", []string{"X-API-Key", app, "X-Original-Method", "GET", "X-Original-URI", "/api/things", "X-Original-URI", "/api/admin"}, 403, "forwarded_invalid"},
		{"repeated forwarded method", []string{"X-API-Key", app, "X-Forwarded-Method", "GET", "X-Forwarded-Method", "DELETE", "X-Forwarded-Uri", "/api/things"}, 403, "forwarded_invalid"},
		{"repeated original URI, same value", []string{"X-API-Key", app, "X-Original-Method", "GET", "X-Original-URI", "/api/things", "x-original-uri", "/api/things"}, 403, "forwarded_invalid"},
		{"other path under auth path", nil, 403, "no_route"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := "/_auth"
			if c.headers == nil {
				target = "/_auth/other"
			}
			r := e.do(trustedPeer, reqText("GET", target, c.headers...))
			if r.status != c.status || r.reason() != c.reason {
				t.Fatalf("status %d reason %q, want %d %q (body %s)", r.status, r.reason(), c.status, c.reason, r.body)
			}
		})
	}
}

var _ = http.StatusOK
