package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// demoEchoReply is what the demo's echo upstream answers: what reached it
// through the gateway.
type demoEchoReply struct {
	Upstream string `json:"upstream"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Query    string `json:"query,omitempty"`
	// Identity holds every header with the identity prefix the upstream
	// received (X-Auth-Type, X-Auth-Client-Key, X-Auth-User-Sub, ...).
	Identity map[string]string `json:"identity"`
	// Forwarded holds X-Forwarded-For/-Proto/-Host and X-Request-Id.
	Forwarded map[string]string `json:"forwarded"`
	// CredentialsForwarded lists the credential headers that reached the
	// upstream (empty with SCOPEGATE_STRIP_CREDENTIALS=true for API keys).
	CredentialsForwarded []string `json:"credentials_forwarded"`
}

// demoEcho is the demo's built-in upstream: it answers every request with a
// JSON description of what it received, so the identity headers the gateway
// adds are visible. apiKeyHeader is SCOPEGATE_API_KEY_HEADER.
func demoEcho(identityPrefix, apiKeyHeader string) http.Handler {
	prefix := strings.ToLower(identityPrefix)
	keyHeader := strings.ToLower(apiKeyHeader)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		rep := demoEchoReply{
			Upstream:             "scopegate demo echo",
			Method:               r.Method,
			Path:                 r.URL.EscapedPath(),
			Query:                r.URL.RawQuery,
			Identity:             map[string]string{},
			Forwarded:            map[string]string{},
			CredentialsForwarded: []string{},
		}
		for name, vals := range r.Header {
			l := strings.ToLower(name)
			switch {
			case strings.HasPrefix(l, prefix):
				rep.Identity[name] = strings.Join(vals, ", ")
			case strings.HasPrefix(l, "x-forwarded-") || l == "x-request-id":
				rep.Forwarded[name] = strings.Join(vals, ", ")
			case l == "authorization" || l == keyHeader || l == "x-api-key" || l == "x-client-key" || l == "cookie":
				rep.CredentialsForwarded = append(rep.CredentialsForwarded, name)
			}
		}
		sort.Strings(rep.CredentialsForwarded)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	})
}

// demoBanner is what the demo prints once it listens.
type demoBanner struct {
	base, admin, authPath, keyHeader string
	upstream, jwksURL, jwt, dir      string
	expires                          time.Time
}

// writeDemoBanner prints the demo's credentials and curl lines. Each curl
// line follows a comment "# STATUS [reason]: what it shows"; the demo test
// parses these lines, runs them and checks the status and reason.
func writeDemoBanner(w io.Writer, b demoBanner) {
	key := func(tok string) string { return fmt.Sprintf("-H '%s: %s'", b.keyHeader, tok) }
	bearer := `-H "Authorization: Bearer $JWT"`
	api := b.base + "/api"
	lines := []struct{ comment, cmd string }{
		{"200: API key allowed; the echo upstream shows the X-Auth-* identity headers it received",
			"curl -i " + key(demoToken) + " " + api + "/orders"},
		{"401 credentials_missing: no credential",
			"curl -i " + api + "/orders"},
		{"401 api_key_invalid: wrong secret",
			"curl -i " + key(demoWrongToken) + " " + api + "/orders"},
		{"403 path_not_allowed: the demo key may GET /api/** and POST /api/orders, not DELETE",
			"curl -i -X DELETE " + key(demoToken) + " " + api + "/orders/1"},
		{"200: demo-limited may make 3 requests a minute: these use them up",
			"for i in 1 2 3; do curl -s -o /dev/null -w '%{http_code}\\n' " + key(demoLimitedToken) + " " + api + "/anything; done"},
		{"429 rate_limited: the 4th within the minute, with Retry-After and RateLimit-* headers",
			"curl -i " + key(demoLimitedToken) + " " + api + "/anything"},
		{"200: alice's company grant (inventory view on acme) covers GET",
			"curl -i " + bearer + " " + api + "/companies/acme/inventory/items"},
		{"200: alice's site grant (inventory update on acme-warehouse) covers PUT",
			"curl -i -X PUT " + bearer + " " + api + "/companies/acme/sites/acme-warehouse/inventory/items/1"},
		{"403 permission_denied: alice may not update inventory at acme-hq",
			"curl -i -X PUT " + bearer + " " + api + "/companies/acme/sites/acme-hq/inventory/items/1"},
		{"403 scope_inactive: company globex is inactive",
			"curl -i " + bearer + " " + api + "/companies/globex/inventory/items"},
		{"401 token_invalid: a tampered JWT",
			`curl -i -H "Authorization: Bearer ${JWT}x" ` + api + "/companies/acme/inventory/items"},
		{"200: forward-auth, as nginx auth_request asks: the identity headers are in the answer, nothing is proxied",
			"curl -i -H 'X-Original-Method: GET' -H 'X-Original-URI: /api/orders' " + key(demoToken) + " " + b.base + b.authPath},
		{"403 path_not_allowed: forward-auth denial, same JSON body as the proxy",
			"curl -i -H 'X-Original-Method: DELETE' -H 'X-Original-URI: /api/orders/1' " + key(demoToken) + " " + b.base + b.authPath},
		{"200: health of the gateway (admin listener; /readyz and /metrics live there too)",
			"curl -i " + b.admin + "/healthz"},
	}

	fmt.Fprintf(w, `
scopegate demo is running
  gateway      %s   (proxies to the built-in echo upstream %s)
  admin        %s/healthz  /readyz  /metrics
  page         %s/   (the operator page: open it in a browser; ten demo requests already went through)
  data         configs/demo/store.yaml and routes.yaml (copied to %s)

API key (client "demo", documented demo secret; allowed GET /api/** and POST /api/orders):
  %s

Demo user JWT (sub %q, EdDSA, valid until %s; public key at %s).
Set it in your shell first:

JWT=%s

Try (each line says what it shows):

`, b.base, b.upstream, b.admin, b.admin, b.dir, demoToken, demoUser, b.expires.UTC().Format(time.RFC3339), b.jwksURL, b.jwt)
	for _, l := range lines {
		fmt.Fprintf(w, "# %s\n%s\n\n", l.comment, l.cmd)
	}
	fmt.Fprintf(w, "More cases are listed in the headers of configs/demo/store.yaml and routes.yaml. Ctrl-C stops the demo.\n\n")
}
