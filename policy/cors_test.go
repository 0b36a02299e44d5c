package policy

import (
	"slices"
	"strings"
	"testing"
)

const corsRoutes = `default: deny
cors:
  allow_origins: [https://app.example.com, "https://*.example.org"]
  allow_methods: [GET, POST, PUT]
  allow_headers: [Authorization, Content-Type, X-API-Key]
  expose_headers: [X-Request-Id, Retry-After]
  max_age: 120
routes:
  - path: /public
    auth: none
  - path: /api/orders/**
    methods: [GET, PUT]
  - path: /api/**
  - path: /files/{name}/**
    allow_encoded_slash: true
`

func TestParseRoutesCORS(t *testing.T) {
	r := mustRoutes(t, corsRoutes)
	c := r.CORS()
	if c == nil {
		t.Fatal("CORS() = nil")
	}
	if c.AllowMethods() != "GET, POST, PUT" || c.AllowHeaders() != "Authorization, Content-Type, X-API-Key" ||
		c.ExposeHeaders() != "X-Request-Id, Retry-After" || c.MaxAge() != "120" || c.Credentials() {
		t.Errorf("CORS = %q %q %q %q %v", c.AllowMethods(), c.AllowHeaders(), c.ExposeHeaders(), c.MaxAge(), c.Credentials())
	}
	if mustRoutes(t, specRoutes).CORS() != nil {
		t.Error("a file without cors: has a CORS block")
	}
	d := mustRoutes(t, "cors:\n  allow_origins: clients\nroutes: []\n").CORS()
	if d == nil || !d.fromClients || d.AllowMethods() != "GET, HEAD, POST, PUT, PATCH, DELETE" || d.MaxAge() != "600" ||
		d.AllowHeaders() != "Authorization, Content-Type, X-API-Key, X-Client-Key" ||
		!strings.HasPrefix(d.ExposeHeaders(), "X-Request-Id, RateLimit, RateLimit-Policy") {
		t.Errorf("defaults: %+v", d)
	}
	e := mustRoutes(t, "cors:\n  allow_origins: clients\n  allow_headers: []\n  expose_headers: []\n  allow_credentials: true\nroutes: []\n").CORS()
	if e.AllowHeaders() != "" || e.ExposeHeaders() != "" || !e.Credentials() {
		t.Errorf("empty lists: %+v", e)
	}
}

func TestParseRoutesCORSErrors(t *testing.T) {
	tests := []struct {
		name, yml string
		line      int
		msg       string
	}{
		{"not a mapping", "cors: yes\nroutes: []\n", 1, "cors must be a mapping"},
		{"no allow_origins", "routes: []\ncors:\n  max_age: 5\n", 3, "allow_origins is required"},
		{"unknown field", "cors:\n  allow_origins: clients\n  allow_origin: x\nroutes: []\n", 3, `unknown field "allow_origin" in cors`},
		{"bad word", "cors:\n  allow_origins: everyone\nroutes: []\n", 2, `"clients" or a list`},
		{"empty list", "cors:\n  allow_origins: []\nroutes: []\n", 2, "allow_origins is empty"},
		{"bad origin", "cors:\n  allow_origins:\n    - https://a.example\n    - https://b.example/path\nroutes: []\n", 4, `entry "https://b.example/path"`},
		{"null origin", "cors:\n  allow_origins: [\"null\"]\nroutes: []\n", 2, `entry "null"`},
		{"star with credentials", "cors:\n  allow_origins:\n    - \"*\"\n  allow_credentials: true\nroutes: []\n", 3, "every site"},
		{"lower-case method", "cors:\n  allow_origins: clients\n  allow_methods: [GET, post]\nroutes: []\n", 3, `"post" is not a method in upper case`},
		{"bad header", "cors:\n  allow_origins: clients\n  allow_headers:\n    - X-Ok\n    - \"X Bad\"\nroutes: []\n", 5, `"X Bad" is not a header name`},
		{"bad expose", "cors:\n  allow_origins: clients\n  expose_headers: [\"a:b\"]\nroutes: []\n", 3, "is not a header name"},
		{"negative max_age", "cors:\n  allow_origins: clients\n  max_age: -1\nroutes: []\n", 3, "max_age must be"},
		{"huge max_age", "cors:\n  allow_origins: clients\n  max_age: 86401\nroutes: []\n", 3, "max_age must be"},
		{"string max_age", "cors:\n  allow_origins: clients\n  max_age: 10m\nroutes: []\n", 3, "max_age must be"},
		{"credentials not bool", "cors:\n  allow_origins: clients\n  allow_credentials: yes please\nroutes: []\n", 3, "allow_credentials must be true or false"},
		{"methods not a list", "cors:\n  allow_origins: clients\n  allow_methods: GET\nroutes: []\n", 3, "must be a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseRoutes([]byte(tt.yml))
			if err == nil {
				t.Fatal("ParseRoutes succeeded")
			}
			want := "line " + itoa(tt.line) + ": "
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %q and %q", err, want, tt.msg)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	e := mustEngine(t, EngineConfig{Routes: mustRoutes(t, corsRoutes)})
	many := strings.Repeat("x-api-key, ", 500) + "content-type"
	tooMany := strings.Repeat("x-api-key,", 300) + "x-other"
	tests := []struct {
		name, path, origin, method, headers string
		forwarded                           Reason
		ours                                bool // answered as a preflight
		want                                Reason
	}{
		{"allowed", "/api/orders/1", "https://app.example.com", "PUT", "x-api-key,content-type", ReasonNone, true, ReasonNone},
		{"allowed, no headers", "/api/x", "https://app.example.com", "GET", "", ReasonNone, true, ReasonNone},
		{"default port and case", "/api/x", "HTTPS://App.Example.COM:443", "GET", "", ReasonNone, true, ReasonNone},
		{"wildcard origin", "/api/x", "https://a.b.example.org", "POST", "", ReasonNone, true, ReasonNone},
		{"public route", "/public", "https://app.example.com", "GET", "", ReasonNone, true, ReasonNone},
		{"odd spacing and case", "/api/x", "https://app.example.com", "POST", " X-API-KEY ,\tContent-type,,  authorization ", ReasonNone, true, ReasonNone},
		{"hundreds of allowed names", "/api/x", "https://app.example.com", "POST", many, ReasonNone, true, ReasonNone},
		{"hundreds with one not allowed", "/api/x", "https://app.example.com", "POST", tooMany, ReasonNone, true, ReasonCORSRejected},
		{"header not allowed", "/api/x", "https://app.example.com", "POST", "x-api-key, x-secret", ReasonNone, true, ReasonCORSRejected},
		{"header not a token", "/api/x", "https://app.example.com", "POST", "x-api-key;x", ReasonNone, true, ReasonCORSRejected},
		{"origin not listed", "/api/x", "https://evil.example.com", "GET", "", ReasonNone, true, ReasonCORSRejected},
		{"wildcard needs a label", "/api/x", "https://example.org", "GET", "", ReasonNone, true, ReasonCORSRejected},
		{"origin null", "/api/x", "null", "GET", "", ReasonNone, true, ReasonCORSRejected},
		{"origin with a path", "/api/x", "https://app.example.com/x", "GET", "", ReasonNone, true, ReasonCORSRejected},
		{"method not allowed", "/api/x", "https://app.example.com", "DELETE", "", ReasonNone, true, ReasonCORSRejected},
		{"method case matters", "/api/x", "https://app.example.com", "put", "", ReasonNone, true, ReasonCORSRejected},
		{"unknown method", "/api/x", "https://app.example.com", "BREW", "", ReasonNone, true, ReasonCORSRejected},
		{"method not a token", "/api/x", "https://app.example.com", "G T", "", ReasonNone, true, ReasonCORSRejected},
		{"empty method", "/api/x", "https://app.example.com", "", "", ReasonNone, true, ReasonCORSRejected},
		{"path screening first", "/api/%2e%2e/x", "https://evil.example.com", "GET", "", ReasonNone, true, ReasonPathInvalid},
		{"encoded slash off the route", "/api/a%2Fb", "https://app.example.com", "GET", "", ReasonNone, true, ReasonPathInvalid},
		{"encoded slash on its route", "/files/a%2Fb/c", "https://app.example.com", "GET", "", ReasonNone, true, ReasonNone},
		{"forwarded headers next", "/api/x", "https://app.example.com", "GET", "", ReasonForwardedInvalid, true, ReasonForwardedInvalid},
		{"no route: an ordinary request", "/other", "https://app.example.com", "GET", "", ReasonNone, false, ReasonNone},
		{"route not for that method: ordinary", "/api/orders/1", "https://app.example.com", "POST", "", ReasonNone, true, ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Method: "OPTIONS", RawPath: tt.path, Origin: tt.origin, Forwarded: tt.forwarded,
				Cred: ParseCredential(CredentialHeaders{APIKey: "some.key"})}
			c, d := e.Preflight(PreflightRequest{Req: req, Method: tt.method, Headers: tt.headers}, nil)
			if (c != nil) != tt.ours {
				t.Fatalf("answered as a preflight: %v, want %v", c != nil, tt.ours)
			}
			if !tt.ours {
				return
			}
			if d.Reason != tt.want || (tt.want == ReasonNone) != d.Allowed() {
				t.Errorf("Preflight = %v (%s), want %s", d.Verdict, d.Reason, tt.want)
			}
			if req.Method != "OPTIONS" {
				t.Errorf("req.Method changed to %q", req.Method)
			}
		})
	}
	noCORS := mustEngine(t, EngineConfig{Routes: mustRoutes(t, specRoutes)})
	if c, _ := noCORS.Preflight(PreflightRequest{Req: &Request{Method: "OPTIONS", RawPath: "/healthz", Origin: "https://a.example"}, Method: "GET"}, nil); c != nil {
		t.Error("a routes file without cors: answered a preflight")
	}
	none := mustEngine(t, EngineConfig{})
	if c, _ := none.Preflight(PreflightRequest{Req: &Request{Method: "OPTIONS", RawPath: "/x", Origin: "https://a.example"}, Method: "GET"}, nil); c != nil {
		t.Error("no routes file answered a preflight")
	}
}

func TestPreflightRouteNotForMethod(t *testing.T) {
	// /api/orders/** takes GET and PUT only; a POST preflight there falls
	// to /api/**, which takes any method.
	e := mustEngine(t, EngineConfig{Routes: mustRoutes(t, corsRoutes)})
	req := &Request{Method: "OPTIONS", RawPath: "/api/orders/1", Origin: "https://app.example.com"}
	_, d := e.Preflight(PreflightRequest{Req: req, Method: "POST"}, nil)
	if !d.Allowed() || d.Route != 2 {
		t.Errorf("Preflight = %+v, want allowed on route 2", d)
	}
}

func TestClientOrigins(t *testing.T) {
	clients := []*Client{
		mustClient(t, ClientRecord{ID: "1", ClientKey: "a", APIKeyHash: sha256Hex("s"), Status: "active", AllowedOrigins: []string{"https://a.example", "https://*.wild.example"}}),
		mustClient(t, ClientRecord{ID: "2", ClientKey: "b", APIKeyHash: sha256Hex("s"), Status: "suspended", AllowedOrigins: []string{"https://suspended.example"}}),
		mustClient(t, ClientRecord{ID: "3", ClientKey: "c", APIKeyHash: sha256Hex("s"), Status: "active"}), // no restriction: lists nothing
		nil,
	}
	co := NewClientOrigins(slices.Values(clients))
	c := mustRoutes(t, "cors:\n  allow_origins: clients\nroutes: []\n").CORS()
	for origin, want := range map[string]bool{
		"https://a.example":         true,
		"https://A.example:443":     true,
		"https://x.wild.example":    true,
		"https://suspended.example": false,
		"https://other.example":     false,
		"null":                      false,
		"":                          false,
	} {
		if got := c.OriginAllowed(origin, co); got != want {
			t.Errorf("OriginAllowed(%q) = %v, want %v", origin, got, want)
		}
	}
	if c.OriginAllowed("https://a.example", nil) {
		t.Error("allowed without client origins")
	}
	star := NewClientOrigins(slices.Values([]*Client{mustClient(t, ClientRecord{ID: "9", ClientKey: "s", APIKeyHash: sha256Hex("s"), Status: "active", AllowedOrigins: []string{"*"}})}))
	if !c.OriginAllowed("https://anything.example", star) || c.OriginAllowed("null", star) {
		t.Error(`a client's "*": any well-formed origin, never null`)
	}
	cred := mustRoutes(t, "cors:\n  allow_origins: clients\n  allow_credentials: true\nroutes: []\n").CORS()
	if cred.OriginAllowed("https://anything.example", star) {
		t.Error(`with allow_credentials a client's "*" must not count`)
	}
	var nilCORS *CORS
	if nilCORS.OriginAllowed("https://a.example", co) {
		t.Error("nil CORS allowed an origin")
	}
}

// FuzzCORSHeaderList checks headersAllowed against a plain reading of the
// list: split at commas, trim spaces and tabs, skip empties, compare names
// case-insensitively with allow_headers.
func FuzzCORSHeaderList(f *testing.F) {
	for _, s := range []string{"", "x-api-key", " X-API-KEY ,content-type", ",,", "x-api-key;", "a b", "\tauthorization\t", "x-api-key,x-other", "é"} {
		f.Add(s)
	}
	c := mustRoutes(f, "cors:\n  allow_origins: clients\n  allow_headers: [Authorization, Content-Type, X-API-Key]\nroutes: []\n").CORS()
	f.Fuzz(func(t *testing.T, list string) {
		want := true
		for _, n := range strings.Split(list, ",") {
			n = strings.Trim(n, " \t")
			if n == "" {
				continue
			}
			if !isToken(n) || !slices.ContainsFunc([]string{"authorization", "content-type", "x-api-key"}, func(h string) bool { return strings.EqualFold(h, n) }) {
				want = false
			}
		}
		if got := c.headersAllowed(list); got != want {
			t.Errorf("headersAllowed(%q) = %v, want %v", list, got, want)
		}
	})
}
