package proxy

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/syncbuf"
)

// identitySpellings returns every spelling test of the identity headers
// (default prefix) and of a prefixed name that is not one of them: each name
// as written, in lower and upper case, with '_' for every '-', for the
// first '-' only and for the last one. underscored reports the spellings
// holding a '_'.
func identitySpellings() (all, underscored []string) {
	for _, n := range append(identityNames[:len(identityNames):len(identityNames)], "X-Auth-Role") {
		i, j := strings.Index(n, "-"), strings.LastIndex(n, "-")
		for _, s := range []string{
			n, strings.ToLower(n), strings.ToUpper(n),
			strings.ReplaceAll(n, "-", "_"), strings.ToLower(strings.ReplaceAll(n, "-", "_")),
			n[:i] + "_" + n[i+1:], n[:j] + "_" + n[j+1:],
		} {
			all = append(all, s)
			if strings.Contains(s, "_") {
				underscored = append(underscored, s)
			}
		}
	}
	return all, underscored
}

// TestForwardAuthRefusesUnderscoreIdentityHeaders: SPEC §5 (Identity
// headers, revised). A proxy in front passes X_Auth_User_Id on, and a
// CGI-style app reads it as X-Auth-User-Id: in every forward-auth convention
// such a request is 403 identity_header_sent, from an allowed credential
// too, whatever the case, wherever the '_' and however many lines. The '-'
// spellings are the proxy's to replace (the shipped recipes do), and other
// '_' names are not identity headers: both are still allowed.
func TestForwardAuthRefusesUnderscoreIdentityHeaders(t *testing.T) {
	e := newEnv(t, envOptions{noUpstream: true})
	app := e.fix.Token("app")
	all, underscored := identitySpellings()
	conventions := map[string]func(h []string) string{
		"traefik": func(h []string) string {
			return reqText("GET", "/_auth", append(h, "X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/api/things", "X-Forwarded-For", "127.0.0.1")...)
		},
		"nginx": func(h []string) string {
			return reqText("GET", "/_auth", append(h, "X-Original-Method", "GET", "X-Original-URI", "/api/things", "X-Forwarded-For", "127.0.0.1")...)
		},
		"envoy": func(h []string) string {
			return reqText("GET", "/_auth/envoy/api/things", append(h, "X-Forwarded-For", "127.0.0.1")...)
		},
	}
	for conv, build := range conventions {
		for _, name := range all {
			refused := strings.Contains(name, "_")
			for _, lines := range []int{1, 2} {
				h := []string{"X-API-Key", app}
				for i := 0; i < lines; i++ {
					h = append(h, name, "victim")
				}
				r := e.do(trustedPeer, build(h))
				switch {
				case refused && (r.status != 403 || r.reason() != "identity_header_sent" || r.header.Get("X-Scopegate-Reason") != "identity_header_sent"):
					t.Errorf("%s: %d× %s: status %d reason %q, want 403 identity_header_sent", conv, lines, name, r.status, r.reason())
				case !refused && r.status != 200:
					t.Errorf("%s: %d× %s: status %d (%s), want 200 (the proxy replaces '-' spellings)", conv, lines, name, r.status, r.body)
				}
			}
		}
		// An underscore name without the prefix is no identity header, and
		// an identity prefix inside a name is no prefix.
		for _, name := range []string{"X_Site_Key", "X_Custom", "My_X-Auth-User-Id", "XAuth_User"} {
			if r := e.do(trustedPeer, build([]string{"X-API-Key", app, name, "v"})); r.status != 200 {
				t.Errorf("%s: %s: status %d (%s), want 200", conv, name, r.status, r.body)
			}
		}
	}
	// An untrusted peer still learns only that it is untrusted.
	r := e.do(directPeer, conventions["traefik"]([]string{"X-API-Key", app, underscored[0], "victim"}))
	if r.status != 403 || r.reason() != "forwarded_untrusted" {
		t.Errorf("untrusted peer: status %d reason %q, want 403 forwarded_untrusted", r.status, r.reason())
	}
	// A custom prefix is the one refused.
	custom := newEnv(t, envOptions{noUpstream: true, mutate: func(c *Config) { c.IdentityHeaderPrefix = "X-Gw-" }})
	for name, want := range map[string]int{"X_Gw_User_Id": 403, "x_gw-scope": 403, "X_Auth_User_Id": 200} {
		r := custom.do(trustedPeer, conventions["nginx"]([]string{"X-API-Key", custom.fix.Token("app"), name, "victim"}))
		if r.status != want {
			t.Errorf("prefix X-Gw-: %s: status %d (%s), want %d", name, r.status, r.body, want)
		}
	}
}

// TestProxyRemovesEverySpellingOfIdentityHeaders: in proxy mode the same
// spellings (any case, '_' anywhere, repeated lines) are removed, the
// request is allowed, and the upstream gets the gateway's values only.
func TestProxyRemovesEverySpellingOfIdentityHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	all, _ := identitySpellings()
	h := []string{"X-API-Key", e.fix.Token("app")}
	for _, name := range all {
		h = append(h, name, "victim", name, "victim2")
	}
	r := e.do(directPeer, reqText("GET", "/api/things", h...))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	for k, v := range ec.Headers {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(k, "_", "-")), "x-auth-") {
			if want := map[string]string{"X-Auth-Type": "api_key", "X-Auth-Client-Key": "app", "X-Auth-Client-Id": "55555555-0000-4000-8000-000000000001"}[k]; len(v) != 1 || v[0] != want {
				t.Errorf("upstream got %s: %q", k, v)
			}
		}
	}
}

// untrustedForwarding are the fields SPEC §5 says only a trusted proxy may
// set, with the X-Forwarded-* the gateway sets itself left out.
var untrustedForwarding = []string{
	"Forwarded", "X-Forwarded-Port", "X-Forwarded-Ssl", "X-Forwarded-Scheme", "X-Forwarded-Server",
	"X-Forwarded-Protocol", "X-Forwarded-Prefix", "X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Client-Cert",
	"X-Real-IP", "True-Client-IP", "Client-IP", "CF-Connecting-IP", "Front-End-Https",
	"X-Client-IP", "X-Cluster-Client-IP", "Fastly-Client-IP",
}

// TestProxyDropsUntrustedForwardingHeaders: SPEC §5. None of the forwarding
// fields (every X-Forwarded-*, the client address fields CDNs and
// frameworks read, Front-End-Https), in any case or number of lines,
// reaches the upstream from an untrusted peer; X-Forwarded-For/-Proto/-Host
// are the gateway's. A trusted proxy's are kept.
func TestProxyDropsUntrustedForwardingHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	h := []string{"X-API-Key", e.fix.Token("app"), "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.test"}
	for _, n := range untrustedForwarding {
		h = append(h, n, "on", strings.ToLower(n), "1.2.3.4")
	}
	for _, c := range []struct {
		peer    netip.Addr
		trusted bool
		headers []string
	}{
		{directPeer, false, h},
		// From a trusted peer two X-Real-IP lines are forwarded_invalid.
		{trustedPeer, true, dropName(h, "X-Real-IP")},
	} {
		r := e.do(c.peer, reqText("GET", "/api/things", c.headers...))
		if r.status != 200 {
			t.Fatalf("peer %s: status %d: %s", c.peer, r.status, r.body)
		}
		ec := echoOf(t, r)
		for _, n := range untrustedForwarding {
			if c.trusted && strings.EqualFold(n, "X-Real-IP") {
				continue
			}
			got := ec.Headers[http.CanonicalHeaderKey(n)]
			if !c.trusted && len(got) != 0 {
				t.Errorf("untrusted peer: upstream got %s: %q", n, got)
			}
			if c.trusted && len(got) != 2 {
				t.Errorf("trusted peer: upstream got %s: %q, want both lines", n, got)
			}
		}
		want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "gw.test"}
		if c.trusted {
			want = map[string]string{"X-Forwarded-For": "6.6.6.6, 127.0.0.2", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.test"}
		}
		for k, v := range want {
			if got := ec.Headers[k]; len(got) != 1 || got[0] != v {
				t.Errorf("peer %s: upstream %s = %q, want [%s]", c.peer, k, got, v)
			}
		}
	}
}

// dropName returns the name/value pairs h without those named name.
func dropName(h []string, name string) []string {
	var out []string
	for i := 0; i+1 < len(h); i += 2 {
		if !strings.EqualFold(h[i], name) {
			out = append(out, h[i], h[i+1])
		}
	}
	return out
}

// TestRepeatedXRealIPFromTrustedPeer: SPEC §5 (Client IP). More than one
// X-Real-IP line from a trusted proxy is 400 forwarded_invalid (403 in
// forward-auth mode), X-Forwarded-For present or not: the proxy appended
// rather than replaced, so neither line can be trusted. An untrusted peer's
// are not read.
func TestRepeatedXRealIPFromTrustedPeer(t *testing.T) {
	e := newEnv(t, envOptions{})
	app := e.fix.Token("app")
	for _, c := range []struct {
		name   string
		peer   netip.Addr
		raw    string
		status int
		reason string
	}{
		{"proxy, two lines", trustedPeer, reqText("GET", "/api/things", "X-API-Key", app, "X-Real-IP", "10.1.2.3", "X-Real-IP", "127.0.0.1"), 400, "forwarded_invalid"},
		{"proxy, two lines in two cases, with X-Forwarded-For", trustedPeer, reqText("GET", "/api/things", "X-API-Key", app, "X-Forwarded-For", "10.1.2.3", "X-Real-IP", "10.1.2.3", "x-real-ip", "10.1.2.3"), 400, "forwarded_invalid"},
		{"proxy, one line", trustedPeer, reqText("GET", "/api/things", "X-API-Key", app, "X-Real-IP", "10.1.2.3"), 200, ""},
		{"proxy, untrusted peer's lines are not read", directPeer, reqText("GET", "/api/things", "X-API-Key", app, "X-Real-IP", "10.1.2.3", "X-Real-IP", "bad"), 200, ""},
		{"forward-auth, two lines", trustedPeer, reqText("GET", "/_auth", "X-API-Key", app, "X-Original-Method", "GET", "X-Original-URI", "/api/things", "X-Real-IP", "10.1.2.3", "X-Real-IP", "10.9.9.9"), 403, "forwarded_invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.peer, c.raw)
			if r.status != c.status || r.reason() != c.reason {
				t.Fatalf("status %d reason %q, want %d %q (%s)", r.status, r.reason(), c.status, c.reason, r.body)
			}
		})
	}
}

// headerScopeRoutes adds a route whose scope comes from a header to
// testRoutes.
const headerScopeRoutes = `
default: deny
action_by_method: {GET: view, HEAD: view, POST: create, PUT: update, PATCH: update, DELETE: delete}
routes:
  - path: /api/hdr/**
    module: inventory
    scope: site:header:X-Site-Key
  - path: /api/**
`

// TestConnectionCannotRemoveWhatTheDecisionRead: a field the decision read
// (a route's scope header, the credential fields, Origin) that the client
// names in Connection is kept: the upstream gets the scope identity with
// the header that named it. Other named fields still go (RFC 9110 §7.6.1).
func TestConnectionCannotRemoveWhatTheDecisionRead(t *testing.T) {
	e := newEnv(t, envOptions{routes: headerScopeRoutes, mutate: func(c *Config) { c.StripCredentials = false }})
	alice := "Bearer " + jwtFor(t, "alice", time.Hour)
	r := e.do(directPeer, reqText("GET", "/api/hdr/items", "Authorization", alice, "X-Site-Key", "acme-hq", "Origin", "https://app.example.com",
		"Connection", "x-site-key, Authorization, ORIGIN, X-Hop", "X-Hop", "1"))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	for k, v := range map[string]string{"X-Auth-Scope": "site:acme-hq", "X-Site-Key": "acme-hq", "Authorization": alice, "Origin": "https://app.example.com", "X-Hop": ""} {
		if g := ec.header(k); g != v {
			t.Errorf("upstream %s = %q, want %q", k, g, v)
		}
	}
	r = e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"), "Connection", "X-API-Key"))
	if ec := echoOf(t, r); ec.header("X-Api-Key") != e.fix.Token("app") {
		t.Errorf("StripCredentials=false: Connection removed the API key the decision read")
	}
}

// TestRepeatedOriginIsNotAllowed: an Origin sent twice is 403
// origin_not_allowed on every route, in every mode: the first line used to
// decide while both were forwarded.
func TestRepeatedOriginIsNotAllowed(t *testing.T) {
	e := newEnv(t, envOptions{})
	app := e.fix.Token("app")
	for _, c := range []struct {
		name string
		peer netip.Addr
		raw  string
	}{
		{"proxy", directPeer, reqText("GET", "/api/things", "X-API-Key", app, "Origin", "https://app.example.com", "origin", "https://evil.example.com")},
		{"proxy, same value", directPeer, reqText("GET", "/api/things", "X-API-Key", app, "Origin", "https://app.example.com", "Origin", "https://app.example.com")},
		{"proxy, public route", directPeer, reqText("GET", "/healthz", "Origin", "https://app.example.com", "Origin", "https://evil.example.com")},
		{"forward-auth", trustedPeer, reqText("GET", "/_auth", "X-API-Key", app, "X-Original-Method", "GET", "X-Original-URI", "/api/things", "Origin", "https://a.example", "Origin", "https://b.example")},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.peer, c.raw)
			if r.status != 403 || r.reason() != "origin_not_allowed" {
				t.Fatalf("status %d reason %q, want 403 origin_not_allowed (%s)", r.status, r.reason(), r.body)
			}
		})
	}
	if r := e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", app, "Origin", "https://app.example.com")); r.status != 200 {
		t.Errorf("one Origin: status %d", r.status)
	}
}

// TestDecisionLogHashesUnknownClientKey: the decision log names the
// presented client_key only when it is a known client's; else (a client
// that swapped X-Client-Key and X-API-Key presents its secret as the key)
// it logs client_key_hash, 12 hex digits of its SHA-256, never the value.
func TestDecisionLogHashesUnknownClientKey(t *testing.T) {
	buf := &syncbuf.Buffer{}
	e := newEnv(t, envOptions{mutate: func(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(buf, nil)) }})
	secret := e.fix.Secrets["app"]
	e.do(directPeer, reqText("GET", "/api/things", "X-Client-Key", secret, "X-API-Key", "app", "X-Request-Id", "swapped"))
	e.do(directPeer, reqText("GET", "/api/things", "X-Client-Key", "app", "X-API-Key", "wrong-secret", "X-Request-Id", "known"))
	lines := decisionLines(t, buf)
	if len(lines) != 2 {
		t.Fatalf("%d decision lines, want 2: %v", len(lines), lines)
	}
	if strings.Contains(buf.String(), secret) {
		t.Errorf("the secret reached the log: %s", buf.String())
	}
	swapped, known := lines[0], lines[1]
	if swapped["request_id"] != "swapped" || swapped["reason"] != "api_key_invalid" {
		t.Fatalf("first line %v", swapped)
	}
	if h, _ := swapped["client_key_hash"].(string); len(h) != 12 || swapped["client_key"] != nil {
		t.Errorf("unknown client_key logged as %v / hash %v", swapped["client_key"], swapped["client_key_hash"])
	}
	if known["client_key"] != "app" || known["client_key_hash"] != nil {
		t.Errorf("known client_key logged as %v / hash %v", known["client_key"], known["client_key_hash"])
	}
}

// TestAbsoluteFormForwardedHost: for an absolute-form request the target's
// authority is the host (RFC 9112 §3.2.2, and what fasthttp sends as Host),
// so the X-Forwarded-Host the gateway sets names it too, not a Host field
// that disagrees.
func TestAbsoluteFormForwardedHost(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(directPeer, "GET http://a.example/api/things?q=1 HTTP/1.1\r\nHost: b.example\r\nX-API-Key: "+e.fix.Token("app")+"\r\nConnection: close\r\n\r\n")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	if ec.Host != "a.example" || ec.header("X-Forwarded-Host") != ec.Host {
		t.Errorf("upstream Host %q, X-Forwarded-Host %q: want both a.example", ec.Host, ec.header("X-Forwarded-Host"))
	}
	if ec.RequestURI != "/api/things?q=1" {
		t.Errorf("upstream target %q", ec.RequestURI)
	}
}

// TestRepeatedOriginWithCORS: with a cors: block, a preflight with two
// Origin lines is 403 cors_rejected and any other request with two is 403
// origin_not_allowed, neither with CORS headers, even when the first line
// is an allowed origin.
func TestRepeatedOriginWithCORS(t *testing.T) {
	e := newEnv(t, envOptions{routes: corsRoutes, fixture: addCORSClients()})
	r := e.do(directPeer, preflightText("/api/things", corsOrigin, "GET", "", "Origin", "https://evil.test"))
	checkPreflight(t, r, corsOrigin, false)
	r = e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("browser"), "Origin", corsOrigin, "Origin", corsOrigin))
	if r.status != 403 || r.reason() != "origin_not_allowed" {
		t.Fatalf("status %d %s, want 403 origin_not_allowed", r.status, r.body)
	}
	checkCORSAnswer(t, r, corsOrigin, false)
}
