package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// preflightSetup builds a browser's preflight for a PUT with an API key.
func preflightSetup(origin string) func(r *fasthttp.Request) {
	return func(r *fasthttp.Request) {
		r.Header.SetMethod(fasthttp.MethodOptions)
		r.SetRequestURI("/api/things")
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "PUT")
		r.Header.Set("Access-Control-Request-Headers", "content-type,x-api-key")
	}
}

// BenchmarkPreflight calls the handler directly with a CORS preflight
// (allow_origins: clients), allowed and refused: the whole answer.
func BenchmarkPreflight(b *testing.B) {
	e := newEnv(b, envOptions{routes: corsRoutes, noUpstream: true, fixture: addCORSClients()})
	for _, c := range []struct {
		name   string
		origin string
		status int
	}{{"allowed", corsOrigin, 204}, {"refused", "https://evil.test", 403}} {
		b.Run(c.name, func(b *testing.B) {
			ctx, _, _ := handlerCtx("127.0.0.1", preflightSetup(c.origin))
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				e.proxy.Handler(ctx)
				if ctx.Response.StatusCode() != c.status {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
		})
	}
}
