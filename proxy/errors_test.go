package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/syncbuf"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

// TestRateLimitHeaders: a rate-limited client's allowed answers carry the
// RateLimit headers; the 429 also Retry-After; earlier denials none. Run
// through the proxy and forward-auth (one bucket per client).
func TestRateLimitHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.fix.Token("limited") // 2 per minute
	wantAllowed := func(r *rawResponse, remaining string) {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		for k, v := range map[string]string{"RateLimit-Limit": "2", "RateLimit-Remaining": remaining, "RateLimit-Policy": `"per-minute";q=2;w=60`} {
			if g := r.header.Get(k); g != v {
				t.Errorf("%s = %q, want %q", k, g, v)
			}
		}
		if !strings.HasPrefix(r.header.Get("RateLimit"), `"per-minute";r=`+remaining+";t=") {
			t.Errorf("RateLimit = %q", r.header.Get("RateLimit"))
		}
		if r.header.Get("Retry-After") != "" {
			t.Errorf("Retry-After on an allowed answer")
		}
	}
	// A denial before the bucket (wrong path for no one: bad secret) carries none.
	r := e.do(directPeer, reqText("GET", "/api/x", "X-API-Key", "limited.wrong"))
	if r.status != 401 || r.header.Get("RateLimit-Limit") != "" {
		t.Fatalf("early denial: %d %v", r.status, r.header)
	}
	wantAllowed(e.do(directPeer, reqText("GET", "/api/x", "X-API-Key", tok)), "1")
	wantAllowed(e.do(trustedPeer, reqText("GET", "/_auth", "X-API-Key", tok, "X-Original-Method", "GET", "X-Original-URI", "/api/x", "X-Forwarded-For", "127.0.0.1")), "0")
	for _, mode := range []string{"proxy", "nginx"} {
		if mode == "proxy" {
			r = e.do(directPeer, reqText("GET", "/api/x", "X-API-Key", tok))
		} else {
			r = e.do(trustedPeer, reqText("GET", "/_auth", "X-API-Key", tok, "X-Original-Method", "GET", "X-Original-URI", "/api/x", "X-Forwarded-For", "127.0.0.1"))
		}
		if r.status != 429 || r.reason() != "rate_limited" {
			t.Fatalf("%s: status %d %s, want 429 rate_limited", mode, r.status, r.body)
		}
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 30 {
			t.Errorf("%s: Retry-After %q", mode, r.header.Get("Retry-After"))
		}
		if r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Limit") != "2" {
			t.Errorf("%s: RateLimit headers %v", mode, r.header)
		}
	}
}

// TestUpstreamErrors: unreachable upstream → 502 upstream_unavailable, slow
// upstream → 504 upstream_timeout, both with the JSON body; a failing
// upstream is skipped while a healthy one remains.
func TestUpstreamErrors(t *testing.T) {
	dead := deadAddr(t)
	e := newEnv(t, envOptions{upstreams: []string{"http://" + dead}})
	app := e.fix.Token("app")
	r := e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", app))
	if r.status != 502 || r.reason() != "upstream_unavailable" || r.header.Get("X-Request-Id") == "" {
		t.Fatalf("dead upstream: %d %s", r.status, r.body)
	}

	slow := newEnv(t, envOptions{upstreamTimeout: 300 * time.Millisecond})
	start := time.Now()
	r = slow.do(directPeer, reqText("GET", "/api/slow", "X-API-Key", slow.fix.Token("app")))
	if r.status != 504 || r.reason() != "upstream_timeout" {
		t.Fatalf("slow upstream: %d %s", r.status, r.body)
	}
	// The upstream answers after 2 s: a 504 proves the 300 ms timeout fired.
	t.Logf("upstream_timeout answered after %v (timeout 300ms)", time.Since(start).Round(time.Millisecond))

	// Two upstreams, one dead: after the first failure every request goes
	// to the live one.
	live := startEcho(t)
	mixed := newEnv(t, envOptions{upstreams: []string{"http://" + dead, "http://" + live.addr}})
	fails := 0
	for i := 0; i < 10; i++ {
		r := mixed.do(directPeer, reqText("GET", "/api/things", "X-API-Key", mixed.fix.Token("app")))
		if r.status != 200 {
			fails++
		}
	}
	if fails > 0 {
		t.Errorf("%d of 10 requests failed with one live upstream (retry on connect failure, passive health check)", fails)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// failingStore answers like a store past its stale TTL: every lookup
// fails with store.ErrUnavailable.
type failingStore struct {
	Store
	down atomic.Bool
}

func (f *failingStore) LookupClient(k string, now time.Time) (*policy.Client, error) {
	if f.down.Load() {
		return nil, store.ErrUnavailable
	}
	return f.Store.LookupClient(k, now)
}

func (f *failingStore) LookupUser(ctx context.Context, sub string, now time.Time) (*policy.User, error) {
	if f.down.Load() {
		return nil, store.ErrUnavailable
	}
	return f.Store.LookupUser(ctx, sub, now)
}

func (f *failingStore) Ready(now time.Time) bool { return !f.down.Load() }

// TestStoreUnavailable: store failures fail closed with 503
// store_unavailable (proxy and forward-auth), and /readyz reports it.
func TestStoreUnavailable(t *testing.T) {
	fix := newEnv(t, envOptions{noUpstream: true}) // for the fixture store
	fs := &failingStore{Store: fix.store}
	e := newEnv(t, envOptions{store: fs})
	fs.down.Store(true)
	for _, c := range []reasonCase{
		{name: "api key", target: "/api/things", headers: []string{"X-API-Key", e.fix.Token("app")}},
		{name: "jwt", target: "/api/me", headers: []string{"Authorization", "Bearer " + jwtFor(t, "alice", time.Hour)}},
	} {
		for _, mode := range modes {
			r := e.send(c, mode)
			if r.status != 503 || r.reason() != "store_unavailable" {
				t.Errorf("%s %s: %d %s, want 503 store_unavailable", mode, c.name, r.status, r.body)
			}
		}
	}
	// A public route needs no store.
	if r := e.send(reasonCase{target: "/healthz"}, "proxy"); r.status != 200 {
		t.Errorf("public route with the store down: %d", r.status)
	}
	if e.proxy.Ready(time.Now()) {
		t.Errorf("Ready with the store down")
	}
}

// TestAdmin: /healthz, /readyz and /metrics on the admin listener.
func TestAdmin(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.do(directPeer, reqText("GET", "/api/things")) // one denial
	e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")))
	base := e.startAdmin(t)
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if s, _ := get("/healthz"); s != 200 {
		t.Errorf("/healthz %d", s)
	}
	for _, c := range []struct{ in, wantPrefix string }{{"", string(e.proxy.idPrefix[:])}, {"admin-probe-1", "admin-probe-1"}} {
		req, _ := http.NewRequest("GET", base+"/readyz", nil)
		if c.in != "" {
			req.Header.Set("X-Request-Id", c.in)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if g := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(g, c.wantPrefix) {
			t.Errorf("admin X-Request-Id = %q (sent %q), want it kept or generated", g, c.in)
		}
	}
	if s, _ := get("/readyz"); s != 200 {
		t.Errorf("/readyz %d", s)
	}
	s, body := get("/metrics")
	if s != 200 {
		t.Fatalf("/metrics %d", s)
	}
	for _, want := range []string{
		`scopegate_decisions_total{result="deny",reason="credentials_missing"} 1`,
		`scopegate_decisions_total{result="allow",reason=""} 1`,
		`scopegate_decision_duration_seconds_bucket`,
		`scopegate_upstream_duration_seconds_bucket`,
		`scopegate_upstream_errors_total{reason="upstream_timeout"} 0`,
		`scopegate_rate_limited_total 0`,
		`scopegate_proxy_store_errors_total`,
		`# TYPE scopegate_decision_duration_seconds histogram`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	e.proxy.SetRulesLoaded(false)
	if s, _ := get("/readyz"); s != 503 {
		t.Errorf("/readyz while not loaded: %d", s)
	}
	if s, _ := get("/nope"); s != 404 {
		t.Errorf("/nope %d", s)
	}
}

// panicStore panics on every lookup.
type panicStore struct{ Store }

func (panicStore) LookupClient(string, time.Time) (*policy.Client, error) { panic("boom") }

// TestPanicRecovered: a panic while serving answers 500 internal_error with
// the JSON body and X-Request-Id, and the server keeps serving.
func TestPanicRecovered(t *testing.T) {
	e := newEnv(t, envOptions{store: panicStore{openFileStore(t, storetest.Basic())}})
	for i := 0; i < 2; i++ {
		r := e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"), "X-Request-Id", "panic-1"))
		if r.status != 500 || r.reason() != "internal_error" || r.header.Get("X-Request-Id") != "panic-1" {
			t.Fatalf("panic: %d %v %s", r.status, r.header, r.body)
		}
	}
}

// TestRoundRobin: requests alternate over the healthy upstreams.
func TestRoundRobin(t *testing.T) {
	a, b := startEcho(t), startEcho(t)
	e := newEnv(t, envOptions{upstreams: []string{"http://" + a.addr, "http://" + b.addr}})
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		r := e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")))
		if r.status != 200 {
			t.Fatalf("status %d", r.status)
		}
		seen[r.header.Get("X-Upstream-Addr")]++
	}
	if seen[a.addr] != 5 || seen[b.addr] != 5 {
		t.Errorf("distribution %v, want 5 each", seen)
	}
}

// TestMalformedRequestNotQuotedInLog: a request fasthttp cannot parse is
// answered 400 without its text (its API key, its token) reaching the log.
func TestMalformedRequestNotQuotedInLog(t *testing.T) {
	var logs syncbuf.Buffer
	e := newEnv(t, envOptions{mutate: func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	key := e.fix.Token("app")
	for _, raw := range []string{
		"GET /api/things HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key + "\r\nno colon here\r\n\r\n",
		"GET /api/things?k=" + key + " HTTP/1.1 extra\r\nHost: x\r\n\r\n",
		"GET /api/things HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key + "\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("p", 1000)+"\r\n", 40) + "\r\n",
		"GET /" + key + "\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /api/things HTTP/1.1\r\nHost: x\r\nX-API-Key " + key + "\r\n\r\n",
		"GET /api/things HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key + "\x00\r\n\r\n",
		"GET /api/things HTTP/1.1\r\nHost: x\r\n X-API-Key: " + key + "\r\n\r\n",
	} {
		r := e.do(directPeer, raw)
		if r.status != 400 && r.status != 431 {
			t.Errorf("status %d for a malformed request, want 400 or 431", r.status)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if strings.Contains(logs.String(), e.fix.Secrets["app"]) {
		t.Errorf("the API key secret reached the log:\n%.800s", logs.String())
	}
}
