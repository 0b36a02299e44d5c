package proxy

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkConsoleCost pairs the cached decision paths with the operator
// page's counters off and on, in one run: a proxied API-key request over an
// in-memory connection, and the forward-auth handler called directly (the
// decision path alone). Run with -count to get rounds side by side:
//
//	go test -run '^$' -bench BenchmarkConsoleCost -count 6 ./proxy
func BenchmarkConsoleCost(b *testing.B) {
	for _, counters := range []string{"off", "on"} {
		noConsole := counters == "off"
		b.Run("proxy_api_key/counters="+counters, func(b *testing.B) {
			be := newConsoleBenchEnv(b, true, noConsole)
			defer be.stop()
			tok := be.fix.Token("app")
			runHTTP(b, be.client("127.0.0.1"), func(r *fasthttp.Request) {
				r.SetRequestURI("http://gw.bench/api/things?page=2")
				r.Header.Set("X-API-Key", tok)
			}, 200, false)
		})
		b.Run("auth_handler_api_key/counters="+counters, func(b *testing.B) {
			be := newConsoleBenchEnv(b, false, noConsole)
			defer be.stop()
			tok := be.fix.Token("app")
			ctx, _, _ := handlerCtx("127.0.0.2", func(r *fasthttp.Request) {
				r.SetRequestURI("/_auth")
				r.Header.Set("X-API-Key", tok)
				r.Header.Set("X-Original-Method", "GET")
				r.Header.Set("X-Original-URI", "/api/things?page=2")
				r.Header.Set("X-Forwarded-For", "203.0.113.7")
			})
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				be.proxy.Handler(ctx)
			}
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		})
	}
}
