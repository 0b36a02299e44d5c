//go:build !race

package proxy

import (
	"fmt"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/storetest"
)

// TestForwardAuthNoAllocs: a forward-auth decision on a cached credential
// allocates nothing once warm: an API key (SHA-256 hash) and a verified JWT
// whose user is cached, with the file store and with PostgreSQL (skipped
// without a database, failed under CI=true).
func TestForwardAuthNoAllocs(t *testing.T) {
	stores := []struct {
		name string
		open func(t *testing.T) Store // nil: newEnv's file store
	}{
		{"file", func(*testing.T) Store { return nil }},
		{"postgres", func(t *testing.T) Store {
			s, _ := openPostgresStore(t, storetest.Basic())
			return s
		}},
	}
	creds := []struct {
		name string
		set  func(t *testing.T, e *env, r *fasthttp.Request)
	}{
		{"api_key", func(t *testing.T, e *env, r *fasthttp.Request) {
			r.Header.Set("X-Forwarded-Uri", "/api/things?page=2")
			r.Header.Set("X-API-Key", e.fix.Token("app"))
		}},
		// A site route satisfied by alice's company grant.
		{"jwt", func(t *testing.T, e *env, r *fasthttp.Request) {
			r.Header.Set("X-Forwarded-Uri", "/api/companies/acme/sites/acme-hq/items")
			r.Header.Set("Authorization", "Bearer "+jwtFor(t, "alice", time.Hour))
		}},
		// The scope from a query parameter, among look-alike keys.
		{"jwt_query_scope", func(t *testing.T, e *env, r *fasthttp.Request) {
			r.Header.Set("X-Forwarded-Uri", "/api/stock/items?x=1&Sitex=2&site=acme-hq")
			r.Header.Set("Authorization", "Bearer "+jwtFor(t, "alice", time.Hour))
		}},
	}
	for _, sc := range stores {
		for _, cc := range creds {
			t.Run(sc.name+"/"+cc.name, func(t *testing.T) {
				e := newEnv(t, envOptions{noUpstream: true, store: sc.open(t)})
				ctx, req, addr := handlerCtx("127.0.0.2", func(r *fasthttp.Request) {
					r.SetRequestURI("/_auth")
					r.Header.Set("X-Forwarded-Method", "GET")
					r.Header.Set("X-Forwarded-For", "203.0.113.7")
					cc.set(t, e, r)
				})
				ctx.Init(req, addr, nil)
				// Forward-auth does not modify the request, so it is reused
				// as is (a fresh ctx.Init would allocate in the test harness,
				// not the handler).
				run := func() {
					ctx.Response.Reset()
					e.proxy.Handler(ctx)
				}
				run()
				if ctx.Response.StatusCode() != 200 {
					t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
				if n := testing.AllocsPerRun(200, run); n != 0 {
					t.Errorf("forward-auth on a cached %s: %v allocs per request, want 0", cc.name, n)
				}
			})
		}
	}
}

// TestProxyNoAllocs: a proxied request on a cached API key allocates
// nothing once warm, end to end over in-memory connections (the client,
// the gateway and an upstream whose answer comes whole): the decision, the
// rewrite, the upstream exchange (no response stream for a whole answer)
// and the answer.
func TestProxyNoAllocs(t *testing.T) {
	be := newBenchEnv(t, true)
	defer be.stop()
	hc := be.client("127.0.0.1")
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://gw.bench/api/things?page=2")
	req.Header.Set("X-API-Key", be.fix.Token("app"))
	var failed error
	run := func() {
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 || string(resp.Body()) != "ok" {
			failed = fmt.Errorf("%v: %d %q", err, resp.StatusCode(), resp.Body())
		}
	}
	run()
	if failed != nil {
		t.Fatal(failed)
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("a proxied request on a cached API key: %v allocs, want 0", n)
	}
	if failed != nil {
		t.Fatal(failed)
	}
}
