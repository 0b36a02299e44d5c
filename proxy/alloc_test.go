//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestForwardAuthNoAllocs: a forward-auth decision on a cached API key
// (SHA-256 hash) allocates nothing once warm.
func TestForwardAuthNoAllocs(t *testing.T) {
	e := newEnv(t, envOptions{noUpstream: true})
	tok := e.fix.Token("app")
	ctx, req, addr := handlerCtx("127.0.0.2", func(r *fasthttp.Request) {
		r.SetRequestURI("/_auth")
		r.Header.Set("X-API-Key", tok)
		r.Header.Set("X-Forwarded-Method", "GET")
		r.Header.Set("X-Forwarded-Uri", "/api/things?page=2")
		r.Header.Set("X-Forwarded-For", "203.0.113.7")
	})
	ctx.Init(req, addr, nil)
	// Forward-auth does not modify the request, so it is reused as is (a
	// fresh ctx.Init would allocate in the test harness, not the handler).
	run := func() {
		ctx.Response.Reset()
		e.proxy.Handler(ctx)
	}
	run()
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("forward-auth on a cached key: %v allocs per request, want 0", n)
	}
}
