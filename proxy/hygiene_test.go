package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/policy"
)

// TestProxyStripsHopByHopAndSpoofedHeaders: hop-by-hop fields, the fields
// named in Connection, client-sent identity headers (any case, '_' for '-'),
// the API key, and an untrusted peer's forwarded headers never reach the
// upstream; the identity headers and X-Forwarded-* are set by the gateway.
func TestProxyStripsHopByHopAndSpoofedHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	raw := "GET /api/things?q=1 HTTP/1.1\r\nHost: gw.test\r\n" +
		"X-API-Key: " + e.fix.Token("app") + "\r\n" +
		"Connection: keep-alive, X-Secret-Hop\r\n" +
		"X-Secret-Hop: 1\r\nKeep-Alive: 300\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTe: trailers\r\nProxy-Connection: keep-alive\r\n" +
		"X-Auth-Type: admin\r\nX-Auth-User-Id: spoofed\r\nX-AUTH-client-key: spoofed\r\nX_Auth_Scope: company:evil\r\nx-auth-custom: spoofed\r\n" +
		"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n" +
		"x-forwarded-for: 7.7.7.7\r\nforwarded: for=7.7.7.7\r\nx-real-ip: 7.7.7.7\r\nX-Forwarded-Host: evil2.test\r\n" +
		"X-Kept: yes\r\n\r\n"
	r := e.do(directPeer, raw)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	for _, gone := range []string{"X-Secret-Hop", "Keep-Alive", "Proxy-Authorization", "Te", "Proxy-Connection", "X-Auth-User-Id", "X-Auth-Custom", "X_auth_scope", "X_Auth_Scope", "X-Auth-Scope", "Forwarded", "X-Real-Ip", "X-Api-Key"} {
		if v := ec.header(gone); v != "" {
			t.Errorf("upstream got %s: %q", gone, v)
		}
	}
	for k, v := range ec.Headers {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(k, "_", "-")), "x-auth-") && k != "X-Auth-Type" && k != "X-Auth-Client-Key" && k != "X-Auth-Client-Id" {
			t.Errorf("upstream got identity-prefixed %s: %v", k, v)
		}
	}
	want := map[string]string{
		"X-Auth-Type":       "api_key",
		"X-Auth-Client-Key": "app",
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "gw.test",
		"X-Forwarded-Proto": "http",
		"X-Kept":            "yes",
	}
	for k, v := range want {
		if g := ec.header(k); g != v {
			t.Errorf("upstream %s = %q, want %q", k, g, v)
		}
	}
	if ec.RequestURI != "/api/things?q=1" {
		t.Errorf("upstream target %q", ec.RequestURI)
	}
	if r.header.Get("Keep-Alive") != "" {
		t.Errorf("upstream's Keep-Alive reached the client")
	}
	if r.header.Get("X-Upstream") != "echo" {
		t.Errorf("upstream response header lost")
	}
}

// TestProxyStripsLowerCaseHopByHopFromResponse: the upstream's hop-by-hop
// fields (and those its Connection header names) do not reach the client
// whatever their case; field names are compared case-insensitively (RFC 9110
// §5.1) even though the gateway keeps the upstream's spelling of the others.
func TestProxyStripsLowerCaseHopByHopFromResponse(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(netip.Addr{}, reqText("GET", "/api/hop", "X-API-Key", e.fix.Token("app")))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for _, gone := range []string{"Keep-Alive", "Proxy-Authenticate", "Te", "Upgrade", "X-Private-Hop", "Proxy-Connection"} {
		if v, ok := r.header[http.CanonicalHeaderKey(gone)]; ok {
			t.Errorf("upstream's %s: %q reached the client", gone, v)
		}
	}
	if r.header.Get("X-Upstream") != "echo" {
		t.Errorf("upstream response header lost")
	}
	if ids := r.header.Values("X-Request-Id"); len(ids) != 1 || ids[0] == "upstream-chosen" {
		t.Errorf("X-Request-Id = %q, want the gateway's one", ids)
	}
	// app has no rate limit: the gateway sets no RateLimit fields, and the
	// upstream's own pass.
	if v := r.header.Values("RateLimit-Remaining"); len(v) != 1 || v[0] != "999" {
		t.Errorf("app: RateLimit-Remaining = %q, want the upstream's [999]", v)
	}
	// limited reaches its bucket: the gateway's RateLimit fields replace the
	// upstream's, never joined by them.
	r = e.do(netip.Addr{}, reqText("GET", "/api/hop", "X-API-Key", e.fix.Token("limited")))
	if r.status != 200 {
		t.Fatalf("limited: status %d: %s", r.status, r.body)
	}
	if v := r.header.Values("RateLimit-Remaining"); len(v) != 1 || v[0] == "999" {
		t.Errorf("limited: RateLimit-Remaining = %q, want the gateway's one value", v)
	}
}

// TestProxyReplacesRequestIDAndUnderscoreForwarded: every incoming
// X-Request-Id line is replaced by the gateway's one, and underscore
// spellings of the forwarded fields (read as the real ones by CGI-style
// servers) are dropped, from untrusted and trusted peers alike.
func TestProxyReplacesRequestIDAndUnderscoreForwarded(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, peer := range []netip.Addr{directPeer, trustedPeer} {
		r := e.do(peer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"),
			"X-Request-Id", "good-id-1", "x-request-id", "<script>", "X_Request_Id", "other",
			"X_Real_IP", "6.6.6.6", "X_Forwarded_For", "6.6.6.6", "x_forwarded_host", "evil.test"))
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		ec := echoOf(t, r)
		if got := ec.Headers["X-Request-Id"]; len(got) != 1 || got[0] != "good-id-1" {
			t.Errorf("peer %s: upstream X-Request-Id = %q, want [good-id-1]", peer, got)
		}
		for k, v := range ec.Headers {
			name := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
			if strings.Contains(k, "_") && (name == "x-request-id" || name == "x-real-ip" || strings.HasPrefix(name, "x-forwarded-")) {
				t.Errorf("peer %s: %s: %q reached the upstream", peer, k, v)
			}
		}
	}
}

// TestProxyTrustedPeerForwardedHeaders: from a trusted proxy the incoming
// X-Forwarded-For is extended, not replaced, and -Proto/-Host are kept.
func TestProxyTrustedPeerForwardedHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(trustedPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"),
		"X-Forwarded-For", "10.1.2.3", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "public.example.com"))
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	for k, v := range map[string]string{"X-Forwarded-For": "10.1.2.3, 127.0.0.2", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com"} {
		if g := ec.header(k); g != v {
			t.Errorf("%s = %q, want %q", k, g, v)
		}
	}
}

// TestProxyCredentialStripping: an API key in Authorization is removed, a
// JWT in Authorization is forwarded; with StripCredentials off the key is
// forwarded.
func TestProxyCredentialStripping(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(directPeer, reqText("GET", "/api/things", "Authorization", "ApiKey "+e.fix.Token("app")))
	if ec := echoOf(t, r); ec.header("Authorization") != "" {
		t.Errorf("API key in Authorization forwarded")
	}
	// On an auth: none route too: the key is a credential whatever the route.
	for _, authz := range []string{"Bearer " + e.fix.Token("app"), "ApiKey " + e.fix.Token("app")} {
		r = e.do(directPeer, reqText("GET", "/healthz", "Authorization", authz))
		if ec := echoOf(t, r); ec.header("Authorization") != "" {
			t.Errorf("public route: %q forwarded", ec.header("Authorization"))
		}
	}
	tok := jwtFor(t, "alice", time.Hour)
	r = e.do(directPeer, reqText("GET", "/api/me", "Authorization", "Bearer "+tok))
	if ec := echoOf(t, r); ec.header("Authorization") != "Bearer "+tok {
		t.Errorf("JWT Authorization not forwarded: %q", ec.header("Authorization"))
	}
	keep := newEnv(t, envOptions{mutate: func(c *Config) { c.StripCredentials = false }})
	r = keep.do(directPeer, reqText("GET", "/api/things", "X-API-Key", keep.fix.Token("app")))
	if ec := echoOf(t, r); ec.header("X-Api-Key") != keep.fix.Token("app") {
		t.Errorf("StripCredentials=false: key not forwarded")
	}
}

// TestProxyBodyForwarded: a POST body (fixed length and chunked) reaches the
// upstream whole.
func TestProxyBodyForwarded(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice := "Bearer " + jwtFor(t, "alice", time.Hour)
	body := strings.Repeat("x", 200000)
	raw := "POST /api/companies/acme/sites/acme-hq/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: " + alice +
		"\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n" + body
	r := e.do(directPeer, raw)
	// alice has no create grant: denied before the body matters.
	if r.status != 403 {
		t.Fatalf("status %d", r.status)
	}
	raw = "PUT /api/companies/acme/sites/acme-hq/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: " + alice +
		"\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n" + body
	r = e.do(directPeer, raw)
	if ec := echoOf(t, r); ec.BodyLen != 200000 || ec.Method != "PUT" {
		t.Errorf("upstream got %s with %d bytes", ec.Method, ec.BodyLen)
	}
	raw = "PUT /api/companies/acme/sites/acme-hq/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: " + alice +
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
	r = e.do(directPeer, raw)
	if ec := echoOf(t, r); ec.BodyLen != 11 {
		t.Errorf("chunked: upstream got %d bytes", ec.BodyLen)
	}
	// Expect: 100-continue is answered by the gateway and not forwarded.
	raw = "PUT /api/companies/acme/sites/acme-hq/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: " + alice +
		"\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
	r = e.do(directPeer, raw)
	if ec := echoOf(t, r); ec.BodyLen != 5 || ec.header("Expect") != "" {
		t.Errorf("Expect: upstream got %d bytes, Expect %q", ec.BodyLen, ec.header("Expect"))
	}
	// A chunked body over MaxBodyBytes (1 MiB here) is cut: 413.
	var big strings.Builder
	for i := 0; i < 40; i++ {
		big.WriteString("8000\r\n" + strings.Repeat("y", 0x8000) + "\r\n")
	}
	big.WriteString("0\r\n\r\n")
	raw = "PUT /api/companies/acme/sites/acme-hq/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: " + alice +
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + big.String()
	r = e.do(directPeer, raw)
	if r.status != 413 || r.reason() != "bad_request" {
		t.Errorf("chunked body over the limit: %d %s", r.status, r.body)
	}
}

// TestBadInput: hostile or malformed requests each get a defined answer.
func TestBadInput(t *testing.T) {
	e := newEnv(t, envOptions{})
	app := e.fix.Token("app")
	cases := []struct {
		name   string
		raw    string
		status int
		reason string
	}{
		{"duplicate Content-Length", "POST /api/things HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, "bad_request"},
		{"oversized headers", "GET /api/things HTTP/1.1\r\nHost: gw.test\r\nX-Big: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431, "bad_request"},
		{"header with NUL", "GET /api/things HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nX-Bad: a\x00b\r\n\r\n", 400, "bad_request"},
		{"raw invalid UTF-8 in path", "GET /api/\xff\xfe HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nConnection: close\r\n\r\n", 400, "path_invalid"},
		{"encoded invalid UTF-8 in path", "GET /api/%C0%AF HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nConnection: close\r\n\r\n", 400, "path_invalid"},
		{"raw backslash", "GET /api\\things HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nConnection: close\r\n\r\n", 400, "path_invalid"},
		{"asterisk target", "GET * HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nConnection: close\r\n\r\n", 400, "bad_request"},
		{"body over the limit", "PUT /api/things HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nContent-Length: 2000000\r\n\r\n" + strings.Repeat("a", 9000), 413, "bad_request"},
		{"absolute-form target is screened", "GET http://gw.test/api/%2e%2e/admin HTTP/1.1\r\nHost: gw.test\r\nX-API-Key: " + app + "\r\nConnection: close\r\n\r\n", 400, "path_invalid"},
		{"API key in query only", "GET /api/things?api_key=" + app + " HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n", 401, "credentials_missing"},
		{"HTTP/1.0 without Host is proxied", "GET /api/things HTTP/1.0\r\nX-API-Key: " + app + "\r\n\r\n", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(directPeer, c.raw)
			if r.status != c.status {
				t.Fatalf("status %d (body %s), want %d", r.status, r.body, c.status)
			}
			if c.reason != "" && r.reason() != c.reason {
				t.Errorf("reason %q, want %q", r.reason(), c.reason)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id")
			}
		})
	}
}

// TestSmugglingContentLengthAndTransferEncoding: with both framing headers
// the body is read as chunked (Content-Length is dropped, also towards the
// upstream) and the connection is closed after the answer, so a request
// hidden behind the chunked body is never served.
func TestSmugglingContentLengthAndTransferEncoding(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice := "Bearer " + jwtFor(t, "alice", time.Hour)
	smuggled := "GET /api/me HTTP/1.1\r\nHost: gw.test\r\nAuthorization: " + alice + "\r\n\r\n"
	raw := "PUT /api/companies/acme/sites/acme-hq/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: " + alice +
		"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	r := e.do(directPeer, raw)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	ec := echoOf(t, r)
	if ec.BodyLen != 0 || ec.header("Content-Length") != "" && ec.header("Content-Length") != "0" {
		t.Errorf("upstream got body %d, Content-Length %q", ec.BodyLen, ec.header("Content-Length"))
	}
	if !r.close {
		t.Errorf("connection not closed after a CL+TE request")
	}
}

// TestRequestID: an incoming X-Request-Id of printable ASCII is kept
// (response, upstream, denial body, which stays valid JSON); one with a
// quote, a backslash, a control or non-ASCII byte, or over 200 bytes is
// replaced by a generated one.
func TestRequestID(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, c := range []struct {
		in   string
		kept bool
	}{
		{"abc-123", true},
		{"req_1:2/3+4=", true},
		{"with space", true},
		{"f47ac10b-58cc-4372-a567-0e02b2c3d479", true},
		{strings.Repeat("a", 200), true},
		{strings.Repeat("a", 201), false},
		{`evil"}{`, false},
		{`back\slash`, false},
		{"tab\there", false},
		{"caf\xc3\xa9", false},
	} {
		t.Run(c.in, func(t *testing.T) {
			allowed := e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"), "X-Request-Id", c.in))
			denied := e.do(directPeer, reqText("GET", "/api/things", "X-Request-Id", c.in))
			for _, r := range []*rawResponse{allowed, denied} {
				id := r.header.Get("X-Request-Id")
				if (id == c.in) != c.kept || id == "" {
					t.Errorf("status %d: X-Request-Id %q for %q, kept = %v, want %v", r.status, id, c.in, id == c.in, c.kept)
				}
			}
			if c.kept && echoOf(t, allowed).header("X-Request-Id") != c.in {
				t.Errorf("upstream X-Request-Id %q, want %q", echoOf(t, allowed).header("X-Request-Id"), c.in)
			}
			var body struct {
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal(denied.body, &body); err != nil || body.RequestID != denied.header.Get("X-Request-Id") {
				t.Errorf("denial body %s (%v): request_id does not match the header", denied.body, err)
			}
		})
	}
	r1 := e.do(directPeer, reqText("GET", "/api/things"))
	r2 := e.do(directPeer, reqText("GET", "/api/things"))
	if r1.header.Get("X-Request-Id") == r2.header.Get("X-Request-Id") {
		t.Errorf("generated ids repeat")
	}
}

// TestCustomIdentityPrefix: SCOPEGATE_IDENTITY_HEADER_PREFIX names the
// identity headers and the stripped incoming set.
func TestCustomIdentityPrefix(t *testing.T) {
	e := newEnv(t, envOptions{mutate: func(c *Config) { c.IdentityHeaderPrefix = "X-Gw-" }})
	r := e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"), "X-Gw-User-Sub", "spoofed", "X-Gw-Other", "spoofed"))
	ec := echoOf(t, r)
	if ec.header("X-Gw-Type") != "api_key" || ec.header("X-Gw-Client-Key") != "app" {
		t.Errorf("identity headers with the custom prefix: %v", ec.Headers)
	}
	if ec.header("X-Gw-User-Sub") != "" || ec.header("X-Gw-Other") != "" || ec.header("X-Auth-Type") != "" {
		t.Errorf("spoofed or default-prefix headers: %v", ec.Headers)
	}
	r = e.do(trustedPeer, reqText("GET", "/_auth", "X-API-Key", e.fix.Token("app"), "X-Original-Method", "GET", "X-Original-URI", "/api/things", "X-Forwarded-For", "127.0.0.1"))
	if r.header.Get("X-Gw-Client-Key") != "app" {
		t.Errorf("forward-auth identity with the custom prefix: %v", r.header)
	}
}

// TestIPv6Peers: an IPv6 loopback peer is a trusted proxy when listed
// (::1/128), its X-Forwarded-For is read, and the client address reaches the
// key's IP rules.
func TestIPv6Peers(t *testing.T) {
	e := newEnv(t, envOptions{listen: "[::1]:0", trusted: []netip.Prefix{netip.MustParsePrefix("::1/128")}})
	v6 := netip.MustParseAddr("::1")
	r := e.do(v6, reqText("GET", "/_auth", "X-API-Key", e.fix.Token("office"), "X-Original-Method", "GET", "X-Original-URI", "/api/x", "X-Forwarded-For", "10.9.8.7"))
	if r.status != 200 {
		t.Fatalf("trusted IPv6 proxy, office client 10.9.8.7: %d %s", r.status, r.body)
	}
	r = e.do(v6, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"), "X-Forwarded-For", "2001:db8::1"))
	if ec := echoOf(t, r); ec.header("X-Forwarded-For") != "2001:db8::1, ::1" {
		t.Errorf("X-Forwarded-For %q", ec.header("X-Forwarded-For"))
	}
}

// rawUpstream records the bytes of the first request it receives (parsed by
// fasthttp, so the whole chunked body and trailer are read) and answers 200.
func rawUpstream(t *testing.T) (addr string, got <-chan string) {
	t.Helper()
	ch := make(chan string, 1)
	record := func(s string) {
		select {
		case ch <- s:
		default: // only the first request's
		}
	}
	addr = testproc.ServeConns(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var buf strings.Builder
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(io.TeeReader(c, &buf))); err != nil {
			record("read error: " + err.Error())
			return
		}
		record(buf.String())
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	return addr, ch
}

// TestProxyDropsRequestTrailers: the trailer section of a chunked request
// is read only while the body streams to the upstream, after the header
// hygiene; the gateway drops it (as nginx does), so no identity, forwarded
// or hop-by-hop field reaches the upstream that way.
func TestProxyDropsRequestTrailers(t *testing.T) {
	up, got := rawUpstream(t)
	e := newEnv(t, envOptions{upstreams: []string{"http://" + up}})
	raw := "PUT /api/companies/acme/sites/acme-hq/x HTTP/1.1\r\nHost: gw.test\r\n" +
		"Authorization: Bearer " + jwtFor(t, "alice", time.Hour) + "\r\n" +
		"Transfer-Encoding: chunked\r\nConnection: close, X-Private-Hop\r\n\r\n" +
		"5\r\nhello\r\n0\r\n" +
		"X-Auth-Client-Key: admin-app\r\nx_auth_client_id: 1\r\nX-Auth-User-Id: admin\r\nForwarded: for=6.6.6.6\r\n" +
		"X-Private-Hop: 1\r\nUpgrade: h2c\r\nX-Innocent: 1\r\n\r\n"
	r := e.do(directPeer, raw)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var sent string
	select {
	case sent = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream got no request")
	}
	if !strings.Contains(sent, "hello") {
		t.Errorf("the body did not reach the upstream:\n%s", sent)
	}
	for _, bad := range []string{"admin-app", "x_auth_client_id", "X-Auth-User-Id: admin", "6.6.6.6", "X-Private-Hop", "h2c", "X-Innocent"} {
		if strings.Contains(sent, bad) {
			t.Errorf("trailer field %q reached the upstream:\n%s", bad, sent)
		}
	}
}

// FuzzRequestIDDenialJSON: whatever X-Request-Id a client sends, the denial
// body is valid JSON whose request_id is the X-Request-Id answered, and a
// kept id is the one sent.
func FuzzRequestIDDenialJSON(f *testing.F) {
	e := newEnv(f, envOptions{noUpstream: true})
	for _, s := range []string{"abc-123", `a"b`, `a\b`, "a\x00b", "\u00e9", "</script>", strings.Repeat("x", 201)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ctx, req, addr := handlerCtx("127.0.0.1", func(r *fasthttp.Request) {
			r.SetRequestURI("/api/things")
			r.Header.Set("X-Request-Id", id)
		})
		ctx.Init(req, addr, nil)
		e.proxy.Handler(ctx)
		var body struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
			t.Fatalf("X-Request-Id %q: denial body %q is not JSON: %v", id, ctx.Response.Body(), err)
		}
		got := string(ctx.Response.Header.Peek("X-Request-Id"))
		if got == "" || body.RequestID != got {
			t.Fatalf("X-Request-Id %q: answered %q, body request_id %q", id, got, body.RequestID)
		}
		if sent := req.Header.Peek("X-Request-Id"); validRequestID(sent) && got != string(sent) {
			t.Fatalf("valid X-Request-Id %q replaced by %q", sent, got)
		}
	})
}

// TestProxyDropsOverridesAndUnderscoreFields: the request was authorized
// with its own method, path and scope, so fields an upstream framework could
// read as another method or path never reach it (from any peer), nor do the
// forward-auth request fields of an untrusted peer, nor any name with an
// underscore (a CGI-style server reads X_Site_Key as X-Site-Key).
func TestProxyDropsOverridesAndUnderscoreFields(t *testing.T) {
	e := newEnv(t, envOptions{})
	always := []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL", "X_Site_Key", "X_Custom"}
	untrustedOnly := []string{"X-Original-URI", "X-Original-Method", "X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Prefix"}
	all := append(append([]string{}, always...), untrustedOnly...)
	var hdrs []string
	for _, h := range all {
		hdrs = append(hdrs, h, "DELETE")
	}
	for _, c := range []struct {
		peer    netip.Addr
		dropped []string
		kept    []string
	}{
		{directPeer, all, nil},
		{trustedPeer, always, untrustedOnly},
	} {
		r := e.do(c.peer, reqText("GET", "/api/things", append([]string{"X-API-Key", e.fix.Token("app"), "X-Custom", "kept"}, hdrs...)...))
		if r.status != 200 {
			t.Fatalf("peer %s: status %d: %s", c.peer, r.status, r.body)
		}
		ec := echoOf(t, r)
		for k, v := range ec.Headers {
			for _, d := range c.dropped {
				if strings.EqualFold(k, d) {
					t.Errorf("peer %s: %s: %q reached the upstream", c.peer, k, v)
				}
			}
		}
		for _, h := range c.kept {
			if ec.header(h) != "DELETE" {
				t.Errorf("peer %s: %s from a trusted proxy did not reach the upstream", c.peer, h)
			}
		}
		if ec.header("X-Custom") != "kept" || ec.Method != "GET" {
			t.Errorf("peer %s: X-Custom %q, method %q", c.peer, ec.header("X-Custom"), ec.Method)
		}
	}
}

// TestHTTP10WithoutHostNamesTheUpstream: an HTTP/1.0 request without Host
// reaches the upstream with Host set to the upstream's address (an HTTP/1.1
// upstream may refuse a request without one).
func TestHTTP10WithoutHostNamesTheUpstream(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.do(directPeer, "GET /api/things HTTP/1.0\r\nX-API-Key: "+e.fix.Token("app")+"\r\n\r\n")
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := echoOf(t, r).Host; got != e.upstream.addr {
		t.Errorf("upstream saw Host %q, want %q", got, e.upstream.addr)
	}
}

// FuzzRequestHeaderHygiene: for any header block fasthttp parses, what
// cleanRequestHeaders leaves for the upstream holds no name with '_', no
// name with the identity prefix in any spelling, no hop-by-hop field, and,
// from an untrusted peer, none of the forwarding fields only a trusted
// proxy may set; and the forward-auth refusal (identityHeaderSent) fires
// exactly when some name holds '_' and reads, with '_' as '-', as the
// prefix. The seeds spell the identity, credential and forwarding fields
// with '_', in several cases and on repeated lines.
func FuzzRequestHeaderHygiene(f *testing.F) {
	for _, s := range []string{
		"X_Auth_User_Id: victim\r\nX_Auth_Scope: company:globex\r\n",
		"x_auth_user_id: a\r\nX-AUTH_USER-ID: b\r\nX-Auth-User-Id: c\r\nx-auth-user-id: d\r\n",
		"X-Auth_Type: admin\r\nX_AUTH-TYPE: admin\r\nX-Auth-Type: admin\r\nX-Auth-Type: admin\r\n",
		"X_Api_Key: k\r\nx_client_key: c\r\nX_HTTP_Method_Override: DELETE\r\nX-Api_Key: k\r\n",
		"X-Real-IP: 1.1.1.1\r\nx-real-ip: 2.2.2.2\r\nX_Real_IP: 3.3.3.3\r\nTrue-Client-IP: 4.4.4.4\r\n",
		"X-Forwarded-Port: 443\r\nx_forwarded_for: 6.6.6.6\r\nX-FORWARDED-SSL: on\r\nForwarded: for=1.1.1.1\r\nforwarded: proto=https\r\n",
		"Connection: X-Auth-Scope, x_auth_scope\r\nX-Auth-Scope: s\r\nCF-Connecting-IP: 5.5.5.5\r\nFront-End-Https: on\r\n",
		"Origin: https://a.example\r\norigin: https://b.example\r\nXAuth_User: x\r\nMy_X-Auth-Id: y\r\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	p := &Proxy{prefix: "X-Auth-", cfg: Config{APIKeyHeader: "X-API-Key"}}
	f.Fuzz(func(t *testing.T, headers string, trusted bool) {
		var req fasthttp.Request
		raw := "GET /api/things HTTP/1.1\r\nHost: h\r\n" + headers + "\r\n\r\n"
		if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // fasthttp refuses it before any handler runs
		}
		h := &req.Header
		st := new(reqState)
		st.hdr.scan(h, p.cfg.APIKeyHeader)
		want := false
		for k := range h.All() {
			want = want || strings.Contains(string(k), "_") && policy.HasHeaderPrefix(string(k), p.prefix)
		}
		if got := p.identityHeaderSent(h, st); got != want {
			t.Fatalf("%q: identityHeaderSent = %v, want %v", headers, got, want)
		}
		p.cleanRequestHeaders(h, st, !trusted)
		for k, v := range h.All() {
			name := string(k)
			switch {
			case strings.Contains(name, "_"), policy.HasHeaderPrefix(name, p.prefix), nameIn(k, hopByHop[:]):
				t.Fatalf("%q: %s: %q left for the upstream", headers, name, v)
			case !trusted && (hasPrefixFold(k, "X-Forwarded-") || nameIn(k, droppedFromUntrusted[:])):
				t.Fatalf("%q: untrusted peer's %s: %q left for the upstream", headers, name, v)
			}
		}
	})
}
