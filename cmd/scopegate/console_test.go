package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/redistest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/policy"
)

const consoleAdminToken = "console-admin-token-0123456789abcdef"

// consoleXSSName is the name of the fixture client "xss": markup that runs
// if the page ever inserts a client name as HTML.
const consoleXSSName = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`

// consoleFixture is storetest.Basic plus the "xss" client (expiring in
// three days) and a last_used_at for "office" (PostgreSQL only: the file
// store keeps last_used_at in memory).
func consoleFixture() storetest.Fixture {
	f := storetest.Basic()
	soon := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	f.Secrets["xss"] = "secret-of-xss"
	f.Clients = append(f.Clients, policy.ClientRecord{
		ID: "55555555-0000-4000-8000-000000000099", ClientKey: "xss", Name: consoleXSSName, Status: "active",
		APIKeyHash: storetest.HashSecret("secret-of-xss"), AllowedOrigins: []string{}, AllowedIPs: []string{},
		AllowedPaths: []string{}, ExpiresAt: &soon,
	})
	used := consoleOfficeLastUsed
	for i := range f.Clients {
		if f.Clients[i].ClientKey == "office" {
			f.Clients[i].LastUsedAt = &used
		}
	}
	return f
}

var consoleOfficeLastUsed = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// consoleRequest is one request of the known mix and what the console must
// make of it.
type consoleRequest struct {
	method, path string
	key          string // fixture client (its token), or a literal token
	sub          string // JWT subject
	forwardAuth  bool   // sent to /_auth as Traefik does
	status       int
	reason       string // "" allowed
	client       string // the client the console counts it for ("" none)
	route        int    // route index in parityRoutes, -1 none
	shownKey     string // the client_key shown in the decision ("" null)
}

func consoleMix() []consoleRequest {
	return []consoleRequest{
		{method: "GET", path: "/api/things", key: "app", status: 200, client: "app", route: 10},
		{method: "GET", path: "/api/things", key: "app", status: 200, client: "app", route: 10},
		{method: "GET", path: "/api/things", key: "app", status: 200, client: "app", route: 10},
		{method: "DELETE", path: "/api/things", key: "app", status: 403, reason: "path_not_allowed", client: "app", route: 10, shownKey: "app"},
		{method: "GET", path: "/api/things", key: "app.wrong-secret", status: 401, reason: "api_key_invalid", client: "app", route: 10, shownKey: "app"},
		{method: "GET", path: "/api/things", key: "ghost.some-secret", status: 401, reason: "api_key_invalid", route: 10, shownKey: "ghost"},
		{method: "GET", path: "/api/things", key: "limited", status: 200, client: "limited", route: 10},
		{method: "GET", path: "/api/things", key: "limited", status: 200, client: "limited", route: 10},
		{method: "GET", path: "/api/things", key: "limited", status: 429, reason: "rate_limited", client: "limited", route: 10, shownKey: "limited"},
		{method: "GET", path: "/api/things", key: "suspended", status: 401, reason: "api_key_inactive", client: "suspended", route: 10, shownKey: "suspended"},
		{method: "GET", path: "/api/things", key: "expired", status: 401, reason: "api_key_expired", client: "expired", route: 10, shownKey: "expired"},
		{method: "GET", path: "/api/things", status: 401, reason: "credentials_missing", route: 10},
		{method: "GET", path: "/api/me", sub: "alice", status: 200, route: 8},
		{method: "GET", path: "/api/me", sub: "bob", status: 403, reason: "user_inactive", route: 8},
		{method: "GET", path: "/nothing/here", key: "app", status: 403, reason: "no_route", client: "app", route: -1, shownKey: "app"},
		{method: "GET", path: "/api/%2e%2e/x", key: "xss", forwardAuth: true, status: 403, reason: "path_invalid", client: "xss", route: -1, shownKey: "xss"},
	}
}

// sendConsoleMix sends the mix through g, each request with the X-Request-Id
// "mix-<index>", and checks each answer's status.
func sendConsoleMix(t *testing.T, g *gateway, f storetest.Fixture, mix []consoleRequest) {
	t.Helper()
	for i, c := range mix {
		req, err := http.NewRequest(c.method, g.base+c.path, nil)
		if c.forwardAuth {
			req, err = http.NewRequest("GET", g.base+"/_auth", nil)
			req.Header.Set("X-Forwarded-Method", c.method)
			req.Header.Set("X-Forwarded-Uri", c.path)
		}
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Request-Id", fmt.Sprint("mix-", i))
		if c.key != "" {
			tok := c.key
			if _, ok := f.Secrets[c.key]; ok {
				tok = f.Token(c.key)
			}
			req.Header.Set("X-API-Key", tok)
		}
		if c.sub != "" {
			req.Header.Set("Authorization", "Bearer "+parityJWT(t, c.sub, ""))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("mix-%d %s %s: status %d, want %d: %s", i, c.method, c.path, resp.StatusCode, c.status, body)
		}
	}
}

// adminGet reads an admin path with the test's admin token ("" for none).
func adminGet(t *testing.T, g *gateway, path, token string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+g.admin+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// adminJSON reads an admin API path into v, failing on anything but 200.
func adminJSON(t *testing.T, g *gateway, path string, v any) []byte {
	t.Helper()
	code, h, b := adminGet(t, g, path, consoleAdminToken)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s: %s", path, code, h.Get("Content-Type"), b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, b)
	}
	return b
}

// The API's answers, as a client reads them.
type (
	apiOverview struct {
		Version       *string `json:"version"`
		UptimeSeconds *int64  `json:"uptime_seconds"`
		Store         struct {
			Kind, State string
			LastReload  *string `json:"last_reload"`
		} `json:"store"`
		Clients   map[string]int `json:"clients"`
		Routes    int            `json:"routes"`
		RateLimit struct {
			Backend, State string
		} `json:"rate_limit"`
		LatencyMs struct{ P50, P99 *float64 } `json:"latency_ms"`
		Minutes   []struct {
			T       string           `json:"t"`
			Allowed int              `json:"allowed"`
			Denied  int              `json:"denied"`
			Reasons map[string]int   `json:"reasons"`
			Latency *json.RawMessage `json:"latency_ms"`
		} `json:"minutes"`
	}
	apiClient struct {
		ID              string         `json:"id"`
		ClientKey       string         `json:"client_key"`
		Name            string         `json:"name"`
		Status          string         `json:"status"`
		ExpiresAt       *string        `json:"expires_at"`
		LastUsedAt      *string        `json:"last_used_at"`
		RateLimitPerMin *int           `json:"rate_limit_per_min"`
		Requests        int            `json:"requests"`
		Denials         map[string]int `json:"denials"`
		Remaining       *int           `json:"remaining"`
	}
	apiRoute struct {
		Index   int            `json:"index"`
		Path    string         `json:"path"`
		Methods []string       `json:"methods"`
		Module  *string        `json:"module"`
		Auth    []string       `json:"auth"`
		Hits    int            `json:"hits"`
		Denials map[string]int `json:"denials"`
	}
	apiDecision struct {
		Time      string  `json:"time"`
		RequestID string  `json:"request_id"`
		Status    int     `json:"status"`
		Reason    string  `json:"reason"`
		Method    string  `json:"method"`
		Path      string  `json:"path"`
		ClientKey *string `json:"client_key"`
		UserSub   *string `json:"user_sub"`
	}
)

// TestConsoleAPI sends a known mix of requests through the real serve, on
// the file store and on PostgreSQL, and checks every field of the four API
// answers against it; that no admin answer holds a secret, a hash, a token
// or the admin token; that the admin token guards every path but /healthz
// and /readyz; and that the stream delivers a new denial.
func TestConsoleAPI(t *testing.T) {
	f := consoleFixture()
	onBothStores(t, f, func(t *testing.T, env map[string]string, kind string) { runConsoleAPI(t, env, f, kind) })
}

func runConsoleAPI(t *testing.T, env map[string]string, f storetest.Fixture, kind string) {
	env["SCOPEGATE_ADMIN_TOKEN"] = consoleAdminToken
	start := time.Now().UTC().Truncate(time.Second)
	g := startGateway(t, env)
	mix := consoleMix()
	sendConsoleMix(t, g, f, mix)

	// What the mix must add up to.
	var allowed, denied int
	reasons := map[string]int{}
	clientReq, clientDen := map[string]int{}, map[string]map[string]int{}
	routeHits, routeDen := map[int]int{}, map[int]map[string]int{}
	add := func(m map[string]map[string]int, k, r string) {
		if m[k] == nil {
			m[k] = map[string]int{}
		}
		m[k][r]++
	}
	for _, c := range mix {
		if c.reason == "" {
			allowed++
		} else {
			denied++
			reasons[c.reason]++
		}
		if c.client != "" {
			clientReq[c.client]++
			if c.reason != "" {
				add(clientDen, c.client, c.reason)
			}
		}
		if c.route >= 0 {
			routeHits[c.route]++
			if c.reason != "" {
				if routeDen[c.route] == nil {
					routeDen[c.route] = map[string]int{}
				}
				routeDen[c.route][c.reason]++
			}
		}
	}
	var bodies [][]byte

	var ov apiOverview
	bodies = append(bodies, adminJSON(t, g, "/api/v1/overview", &ov))
	if ov.Version == nil || *ov.Version != version || ov.UptimeSeconds == nil || *ov.UptimeSeconds < 0 || *ov.UptimeSeconds > 600 {
		t.Errorf("version/uptime: %v %v", ov.Version, ov.UptimeSeconds)
	}
	if ov.Store.Kind != kind || ov.Store.State != "ok" || ov.Store.LastReload == nil {
		t.Errorf("store = %+v", ov.Store)
	} else if lr, err := time.Parse(time.RFC3339, *ov.Store.LastReload); err != nil || lr.Before(start.Add(-time.Second)) || !strings.HasSuffix(*ov.Store.LastReload, "Z") {
		t.Errorf("last_reload %q (%v), want an RFC 3339 UTC time since the start", *ov.Store.LastReload, err)
	}
	if want := map[string]int{"active": 5, "suspended": 1, "revoked": 1}; !mapsEqual(ov.Clients, want) {
		t.Errorf("clients = %v, want %v", ov.Clients, want)
	}
	if ov.Routes != 11 || ov.RateLimit.Backend != "local" || ov.RateLimit.State != "ok" {
		t.Errorf("routes %d, rate_limit %+v", ov.Routes, ov.RateLimit)
	}
	if ov.LatencyMs.P50 == nil || ov.LatencyMs.P99 == nil || *ov.LatencyMs.P50 <= 0 || *ov.LatencyMs.P50 > *ov.LatencyMs.P99 {
		t.Errorf("latency_ms = %v / %v", ov.LatencyMs.P50, ov.LatencyMs.P99)
	}
	if len(ov.Minutes) != 60 {
		t.Fatalf("%d minutes, want 60", len(ov.Minutes))
	}
	var gotAllowed, gotDenied int
	gotReasons := map[string]int{}
	for i, m := range ov.Minutes {
		mt, err := time.Parse(time.RFC3339, m.T)
		if err != nil || mt.Second() != 0 || mt.Location() != time.UTC {
			t.Fatalf("minute %d: t %q", i, m.T)
		}
		if i > 0 {
			prev, _ := time.Parse(time.RFC3339, ov.Minutes[i-1].T)
			if mt.Sub(prev) != time.Minute {
				t.Fatalf("minutes %d and %d are not a minute apart", i-1, i)
			}
		}
		gotAllowed += m.Allowed
		gotDenied += m.Denied
		for r, n := range m.Reasons {
			gotReasons[r] += n
		}
		if m.Reasons == nil || m.Latency == nil {
			t.Fatalf("minute %d lacks reasons or latency_ms", i)
		}
	}
	if last, _ := time.Parse(time.RFC3339, ov.Minutes[59].T); time.Since(last) > 2*time.Minute || time.Since(last) < 0 {
		t.Errorf("the last minute %s is not the current one", ov.Minutes[59].T)
	}
	if gotAllowed != allowed || gotDenied != denied || !mapsEqual(gotReasons, reasons) {
		t.Errorf("minutes add up to %d allowed, %d denied, %v; want %d, %d, %v", gotAllowed, gotDenied, gotReasons, allowed, denied, reasons)
	}

	var cl struct{ Clients []apiClient }
	bodies = append(bodies, adminJSON(t, g, "/api/v1/clients", &cl))
	if len(cl.Clients) != len(f.Clients) {
		t.Fatalf("%d clients, want %d", len(cl.Clients), len(f.Clients))
	}
	byKey := map[string]apiClient{}
	for _, c := range cl.Clients {
		byKey[c.ClientKey] = c
	}
	for _, rec := range f.Clients {
		c, ok := byKey[rec.ClientKey]
		if !ok {
			t.Errorf("client %s missing", rec.ClientKey)
			continue
		}
		if c.ID != rec.ID || c.Name != rec.Name || c.Status != rec.Status {
			t.Errorf("%s: id/name/status %q %q %q", rec.ClientKey, c.ID, c.Name, c.Status)
		}
		wantExp := ""
		if rec.ExpiresAt != nil {
			wantExp = rec.ExpiresAt.UTC().Format(time.RFC3339)
		}
		if deref(c.ExpiresAt) != wantExp {
			t.Errorf("%s: expires_at %q, want %q", rec.ClientKey, deref(c.ExpiresAt), wantExp)
		}
		if c.Requests != clientReq[rec.ClientKey] || !mapsEqual(c.Denials, clientDen[rec.ClientKey]) {
			t.Errorf("%s: requests %d denials %v; want %d %v", rec.ClientKey, c.Requests, c.Denials, clientReq[rec.ClientKey], clientDen[rec.ClientKey])
		}
		usedInMix := false
		for _, m := range mix {
			usedInMix = usedInMix || m.client == rec.ClientKey && m.reason == ""
		}
		switch {
		case usedInMix:
			if lu, err := time.Parse(time.RFC3339, deref(c.LastUsedAt)); err != nil || lu.Before(start) {
				t.Errorf("%s: last_used_at %q, want a time since the start", rec.ClientKey, deref(c.LastUsedAt))
			}
		case rec.LastUsedAt != nil && kind == "postgres":
			if deref(c.LastUsedAt) != rec.LastUsedAt.Format(time.RFC3339) {
				t.Errorf("%s: last_used_at %q, want the stored %s", rec.ClientKey, deref(c.LastUsedAt), rec.LastUsedAt)
			}
		case c.LastUsedAt != nil:
			t.Errorf("%s: last_used_at %q for a client never used", rec.ClientKey, *c.LastUsedAt)
		}
		if rec.RateLimitPerMin == nil {
			if c.RateLimitPerMin != nil || c.Remaining != nil {
				t.Errorf("%s: unlimited client shows limit %v remaining %v", rec.ClientKey, c.RateLimitPerMin, c.Remaining)
			}
		} else if c.RateLimitPerMin == nil || *c.RateLimitPerMin != *rec.RateLimitPerMin || c.Remaining == nil || *c.Remaining < 0 || *c.Remaining > 1 {
			// limited (2 a minute) used both tokens; one comes back every 30 s.
			t.Errorf("%s: rate_limit_per_min %v remaining %v", rec.ClientKey, c.RateLimitPerMin, c.Remaining)
		}
	}

	var rt struct{ Routes []apiRoute }
	bodies = append(bodies, adminJSON(t, g, "/api/v1/routes", &rt))
	if len(rt.Routes) != 11 {
		t.Fatalf("%d routes, want 11", len(rt.Routes))
	}
	for i, r := range rt.Routes {
		if r.Index != i || r.Methods == nil || len(r.Auth) == 0 {
			t.Errorf("route %d: %+v", i, r)
		}
		if r.Hits != routeHits[i] || !mapsEqual(r.Denials, routeDen[i]) {
			t.Errorf("route %d %s: hits %d denials %v; want %d %v", i, r.Path, r.Hits, r.Denials, routeHits[i], routeDen[i])
		}
	}
	if r := rt.Routes[0]; r.Path != "/healthz" || !slices.Equal(r.Auth, []string{"none"}) || r.Module != nil {
		t.Errorf("route 0 = %+v", r)
	}
	if r := rt.Routes[1]; r.Path != "/api/companies/{company}/sites/{site}/inventory/**" || deref(r.Module) != "inventory" || !slices.Equal(r.Auth, []string{"api_key", "jwt"}) {
		t.Errorf("route 1 = %+v", r)
	}
	if r := rt.Routes[8]; r.Path != "/api/me" || !slices.Equal(r.Auth, []string{"jwt"}) {
		t.Errorf("route 8 = %+v", r)
	}

	var dec struct{ Decisions []apiDecision }
	bodies = append(bodies, adminJSON(t, g, "/api/v1/decisions", &dec))
	var want []int // mix indexes of the denials, newest first
	for i := len(mix) - 1; i >= 0; i-- {
		if mix[i].reason != "" {
			want = append(want, i)
		}
	}
	if len(dec.Decisions) != len(want) {
		t.Fatalf("%d decisions, want %d", len(dec.Decisions), len(want))
	}
	for j, i := range want {
		d, c := dec.Decisions[j], mix[i]
		wantPath := c.path
		tm, err := time.Parse(time.RFC3339Nano, d.Time)
		if err != nil || tm.Before(start) || !strings.HasSuffix(d.Time, "Z") {
			t.Errorf("decision %d: time %q", j, d.Time)
		}
		wantSub := c.sub
		if d.RequestID != fmt.Sprint("mix-", i) || d.Status != c.status || d.Reason != c.reason || d.Method != c.method ||
			d.Path != wantPath || deref(d.ClientKey) != c.shownKey || deref(d.UserSub) != wantSub {
			t.Errorf("decision %d = %+v (%s, %s), want mix-%d %+v", j, d, deref(d.ClientKey), deref(d.UserSub), i, c)
		}
	}

	// The page and /metrics too: no secret, hash, token or admin token.
	code, _, page := adminGet(t, g, "/", consoleAdminToken)
	if code != 200 {
		t.Errorf("GET / with the token: %d", code)
	}
	_, _, metricsBody := adminGet(t, g, "/metrics", consoleAdminToken)
	bodies = append(bodies, page, metricsBody)
	var secrets []string
	for _, s := range f.Secrets {
		secrets = append(secrets, s)
	}
	for _, c := range f.Clients {
		secrets = append(secrets, c.APIKeyHash, strings.TrimPrefix(c.APIKeyHash, "sha256:")[:16])
	}
	secrets = append(secrets, consoleAdminToken, paritySecret, parityJWT(t, "alice", "")[:40])
	for _, b := range bodies {
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("an admin answer holds %q", s)
			}
		}
	}

	checkAdminToken(t, g)
	checkStream(t, g)
}

// checkAdminToken: every admin path but /healthz and /readyz answers 401
// without the token or with a wrong one; / answers the page with its 401 so
// a browser can ask for the token.
func checkAdminToken(t *testing.T, g *gateway) {
	t.Helper()
	for _, p := range []string{"/", "/metrics", "/api/v1/overview", "/api/v1/clients", "/api/v1/routes", "/api/v1/decisions", "/api/v1/decisions/stream", "/nope"} {
		for _, tok := range []string{"", "wrong-token", consoleAdminToken + "x", consoleAdminToken[:10]} {
			code, h, b := adminGet(t, g, p, tok)
			if code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s with token %q: %d, want 401 with WWW-Authenticate", p, tok, code)
			}
			if p == "/" && !strings.Contains(string(b), "<html") {
				t.Errorf("GET / without the token does not answer the page")
			}
			if p != "/" && strings.Contains(string(b), "clients") {
				t.Errorf("GET %s without the token leaks data: %s", p, b)
			}
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _, _ := adminGet(t, g, p, ""); code != 200 {
			t.Errorf("GET %s without the token: %d, want 200", p, code)
		}
	}
	req, _ := http.NewRequest("GET", "http://"+g.admin+"/api/v1/overview", nil)
	req.Header.Set("Authorization", "bearer "+consoleAdminToken) // the scheme is case-insensitive
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case bearer: %d", resp.StatusCode)
	}
}

// checkStream opens the denial stream, sends a denial and waits for it.
func checkStream(t *testing.T, g *gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+g.admin+"/api/v1/decisions/stream", nil)
	req.Header.Set("Authorization", "Bearer "+consoleAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() { // the stream has begun: later denials reach it
		t.Fatal("stream closed at once")
	}
	r, _ := http.NewRequest("GET", g.base+"/api/stream-check", nil)
	r.Header.Set("X-Request-Id", "stream-1")
	if resp, err := http.DefaultClient.Do(r); err == nil {
		resp.Body.Close()
	}
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var d apiDecision
		if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
			t.Fatalf("stream event %q: %v", line, err)
		}
		if d.RequestID == "stream-1" && d.Reason == "credentials_missing" && d.Path == "/api/stream-check" && d.Status == 401 {
			return
		}
		t.Fatalf("unexpected stream event %s", line)
	}
	t.Fatalf("stream ended without the denial: %v", sc.Err())
}

// TestConsoleStoreDown: with PostgreSQL unreachable, the page and the API
// still answer and say the store is down.
func TestConsoleStoreDown(t *testing.T) {
	env := parityEnv(t)
	env["SCOPEGATE_DATABASE_URL"] = fmt.Sprintf("postgres://scopegate@127.0.0.1:%d/none?connect_timeout=1", testproc.FreePort(t))
	env["SCOPEGATE_DATABASE_CONNECT_TIMEOUT"] = "1s"
	g := startGateway(t, env)
	r, _ := http.NewRequest("GET", g.base+"/api/things", nil)
	r.Header.Set("X-API-Key", "app.secret-of-app")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("request with the store down: %d, want 503", resp.StatusCode)
	}
	var ov apiOverview
	code, _, b := adminGet(t, g, "/api/v1/overview", "")
	if code != 200 || json.Unmarshal(b, &ov) != nil {
		t.Fatalf("overview: %d %s", code, b)
	}
	if ov.Store.Kind != "postgres" || ov.Store.State != "down" || ov.Store.LastReload != nil {
		t.Errorf("store = %+v, want postgres, down, never reloaded", ov.Store)
	}
	var cl struct{ Clients []apiClient }
	if code, _, b := adminGet(t, g, "/api/v1/clients", ""); code != 200 || json.Unmarshal(b, &cl) != nil || cl.Clients == nil {
		t.Errorf("clients: %d %s", code, b)
	}
	var dec struct{ Decisions []apiDecision }
	if code, _, b := adminGet(t, g, "/api/v1/decisions", ""); code != 200 || json.Unmarshal(b, &dec) != nil ||
		len(dec.Decisions) != 1 || dec.Decisions[0].Reason != "store_unavailable" || dec.Decisions[0].Status != 503 {
		t.Errorf("decisions: %d %s", code, b)
	}
	if code, _, _ := adminGet(t, g, "/", ""); code != 200 {
		t.Errorf("page: %d", code)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// mapsEqual compares count maps, a nil map equal to an empty one.
func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestDemoOperatorPage: `scopegate demo` prints the page's address, and
// the page has traffic to show at once: the warm-up requests are in the
// counters and the denial list before anyone sends a request.
func TestDemoOperatorPage(t *testing.T) {
	d := startDemo(t, nil)
	m := regexp.MustCompile(`(?m)^  page +(http://\S+)/ +\(the operator page`).FindStringSubmatch(d.out.String())
	if m == nil {
		t.Fatalf("no page address in the banner:\n%s", d.out)
	}
	get := func(path string, v any) {
		t.Helper()
		code, body := httpGet(t, m[1]+path)
		if code != 200 || json.Unmarshal([]byte(body), v) != nil {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
	}
	var ov struct {
		Totals struct{ Allowed, Denied int } `json:"totals"`
	}
	get("/api/v1/overview", &ov)
	if ov.Totals.Allowed != 4 || ov.Totals.Denied != 6 {
		t.Errorf("totals after the warm-up = %+v, want 4 allowed, 6 denied", ov.Totals)
	}
	var dec struct{ Decisions []apiDecision }
	get("/api/v1/decisions", &dec)
	reasons := map[string]bool{}
	for _, x := range dec.Decisions {
		if strings.HasPrefix(x.RequestID, "demo-warmup-") {
			reasons[x.Reason] = true
		}
	}
	for _, r := range []string{"api_key_invalid", "path_not_allowed", "credentials_missing", "api_key_expired", "api_key_inactive", "permission_denied"} {
		if !reasons[r] {
			t.Errorf("the warm-up denials lack %s: %v", r, reasons)
		}
	}
	if code, body := httpGet(t, m[1]+"/"); code != 200 || !strings.Contains(body, "<title>scopegate</title>") {
		t.Errorf("GET /: %d", code)
	}
}

// TestConsoleRedisRateLimit: with the Redis backend the overview says
// "redis", "ok" while Redis answers, and "fallback" once it has stopped and
// a rate-limited request found it gone (the breaker open).
func TestConsoleRedisRateLimit(t *testing.T) {
	srv := redistest.Start(t)
	env := parityEnv(t)
	env["SCOPEGATE_STORE_FILE"] = basicStoreFile(t)
	env["SCOPEGATE_RATE_LIMIT_BACKEND"] = "redis"
	env["SCOPEGATE_REDIS_URL"] = "redis://" + srv.Addr + "/0"
	env["SCOPEGATE_REDIS_KEY_PREFIX"] = redistest.Prefix(t)
	env["SCOPEGATE_REDIS_TIMEOUT"] = "2s"
	g := startGateway(t, env)
	state := func() (string, string) {
		t.Helper()
		var ov apiOverview
		code, _, b := adminGet(t, g, "/api/v1/overview", "")
		if code != 200 || json.Unmarshal(b, &ov) != nil {
			t.Fatalf("overview: %d %s", code, b)
		}
		return ov.RateLimit.Backend, ov.RateLimit.State
	}
	limited := func() {
		t.Helper()
		code, body := httpGet(t, g.base+"/api/things", "X-API-Key", storetest.Basic().Token("limited"))
		if code != 200 && code != 429 {
			t.Fatalf("limited client: %d %s", code, body)
		}
	}
	limited()
	if b, s := state(); b != "redis" || s != "ok" {
		t.Errorf("with Redis up: %s, %s; want redis, ok", b, s)
	}
	srv.Stop()
	limited() // finds Redis gone: the local fallback answers, the breaker opens
	if b, s := state(); b != "redis" || s != "fallback" {
		t.Errorf("with Redis stopped: %s, %s; want redis, fallback", b, s)
	}
}
