//go:build !race

package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// TestPreflightNoAllocs: answering a CORS preflight (allowed or refused,
// origins from the clients) and adding the CORS headers to a forward-auth
// answer allocate nothing once warm.
func TestPreflightNoAllocs(t *testing.T) {
	e := newEnv(t, envOptions{routes: corsRoutes, noUpstream: true, fixture: addCORSClients()})
	cases := []struct {
		name   string
		status int
		setup  func(r *fasthttp.Request)
	}{
		{"preflight allowed", 204, preflightSetup(corsOrigin)},
		{"preflight refused", 403, preflightSetup("https://evil.test")},
		{"preflight, header lines joined", 204, func(r *fasthttp.Request) {
			preflightSetup(corsOrigin)(r)
			r.Header.Add("Access-Control-Request-Headers", "content-type")
		}},
		{"forward-auth answer with CORS headers", 200, func(r *fasthttp.Request) {
			r.SetRequestURI("/_auth")
			r.Header.Set("X-Forwarded-Method", "GET")
			r.Header.Set("X-Forwarded-Uri", "/api/things")
			r.Header.Set("Origin", corsOrigin)
			r.Header.Set("X-API-Key", e.fix.Token("app"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, _, _ := handlerCtx("127.0.0.2", c.setup)
			run := func() {
				ctx.Response.Reset()
				e.proxy.Handler(ctx)
			}
			run()
			if ctx.Response.StatusCode() != c.status {
				t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
			if n := testing.AllocsPerRun(200, run); n != 0 {
				t.Errorf("%v allocs per request, want 0", n)
			}
		})
	}
}
