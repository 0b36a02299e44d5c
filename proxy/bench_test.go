package proxy

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// benchEnv is a gateway and an upstream on in-memory listeners.
type benchEnv struct {
	*env
	gw   *fasthttputil.InmemoryListener
	stop func()
}

// newBenchEnv serves p over an in-memory listener; the upstream (when
// wanted) is an in-memory fasthttp server answering 200 "ok".
func newBenchEnv(b testing.TB, withUpstream bool) *benchEnv {
	b.Helper()
	return newConsoleBenchEnv(b, withUpstream, false)
}

// newConsoleBenchEnv is newBenchEnv with the operator page's counters off
// when noConsole is set.
func newConsoleBenchEnv(b testing.TB, withUpstream, noConsole bool) *benchEnv {
	b.Helper()
	var upLn *fasthttputil.InmemoryListener
	var up *fasthttp.Server
	o := envOptions{noUpstream: true, noConsole: noConsole}
	if withUpstream {
		upLn = fasthttputil.NewInmemoryListener()
		up = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("ok") }}
		go up.Serve(upLn)
		o.noUpstream = false
		o.upstreams = []string{"http://upstream.bench"}
		o.mutate = func(c *Config) { c.UpstreamDial = func(string) (net.Conn, error) { return upLn.Dial() } }
	}
	e := newEnv(b, o)
	gw := fasthttputil.NewInmemoryListener()
	srv := e.proxy.NewServer()
	go srv.Serve(gw)
	return &benchEnv{env: e, gw: gw, stop: func() {
		_ = srv.Shutdown()
		if up != nil {
			_ = up.Shutdown()
		}
	}}
}

// client returns a HostClient whose connections come from peer.
func (be *benchEnv) client(peer string) *fasthttp.HostClient {
	local := &net.TCPAddr{IP: net.ParseIP(peer), Port: 40000}
	return &fasthttp.HostClient{
		Addr:     "gw.bench",
		MaxConns: 512,
		Dial:     func(string) (net.Conn, error) { return be.gw.DialWithLocalAddr(local) },
	}
}

// runHTTP sends req concurrently (RunParallel) or serially and checks the
// status.
func runHTTP(b *testing.B, hc *fasthttp.HostClient, setup func(*fasthttp.Request), want int, parallel bool) {
	b.ReportAllocs()
	one := func(req *fasthttp.Request, resp *fasthttp.Response) {
		if err := hc.Do(req, resp); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode() != want {
			b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
		}
	}
	if !parallel {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		setup(req)
		for b.Loop() {
			one(req, resp)
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		setup(req)
		for pb.Next() {
			one(req, resp)
		}
	})
}

// BenchmarkGateway measures the full handler path over an in-memory
// connection (client and server HTTP/1.1 parsing included): a cached API key
// proxied to an upstream, a cached JWT proxied, and a forward-auth decision
// on a cached key.
func BenchmarkGateway(b *testing.B) {
	cases := []struct {
		name     string
		upstream bool
		peer     string
		setup    func(be *benchEnv) func(*fasthttp.Request)
	}{
		// The paired baseline: an auth: none route through the same proxy,
		// so proxy_api_key minus proxy_public is what authorization costs.
		{"proxy_public", true, "127.0.0.1", func(be *benchEnv) func(*fasthttp.Request) {
			return func(r *fasthttp.Request) { r.SetRequestURI("http://gw.bench/healthz") }
		}},
		{"proxy_api_key", true, "127.0.0.1", func(be *benchEnv) func(*fasthttp.Request) {
			tok := be.fix.Token("app")
			return func(r *fasthttp.Request) {
				r.SetRequestURI("http://gw.bench/api/things?page=2")
				r.Header.Set("X-API-Key", tok)
			}
		}},
		{"proxy_jwt", true, "127.0.0.1", func(be *benchEnv) func(*fasthttp.Request) {
			tok := "Bearer " + jwtFor(b, "alice", time.Hour)
			return func(r *fasthttp.Request) {
				r.SetRequestURI("http://gw.bench/api/companies/acme/sites/acme-hq/items")
				r.Header.Set("Authorization", tok)
			}
		}},
		{"forward_auth_api_key", false, "127.0.0.2", func(be *benchEnv) func(*fasthttp.Request) {
			tok := be.fix.Token("app")
			return func(r *fasthttp.Request) {
				r.SetRequestURI("http://gw.bench/_auth")
				r.Header.Set("X-API-Key", tok)
				r.Header.Set("X-Forwarded-Method", "GET")
				r.Header.Set("X-Forwarded-Uri", "/api/things?page=2")
				r.Header.Set("X-Forwarded-For", "203.0.113.7")
			}
		}},
	}
	for _, c := range cases {
		for _, par := range []bool{false, true} {
			name := c.name
			if par {
				name += "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				be := newBenchEnv(b, c.upstream)
				defer be.stop()
				runHTTP(b, be.client(c.peer), c.setup(be), 200, par)
			})
		}
	}
}

// handlerCtx builds a RequestCtx for calling the handler directly.
func handlerCtx(peer string, setup func(*fasthttp.Request)) (*fasthttp.RequestCtx, *fasthttp.Request, net.Addr) {
	req := &fasthttp.Request{}
	setup(req)
	addr := &net.TCPAddr{IP: net.ParseIP(peer), Port: 40000}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(req, addr, nil)
	return ctx, req, addr
}

// BenchmarkHandlerForwardAuth calls the handler directly (no HTTP parsing):
// the decision path itself.
func BenchmarkHandlerForwardAuth(b *testing.B) {
	be := newBenchEnv(b, false)
	defer be.stop()
	tok := be.fix.Token("app")
	setup := func(r *fasthttp.Request) {
		r.SetRequestURI("/_auth")
		r.Header.Set("X-API-Key", tok)
		r.Header.Set("X-Original-Method", "GET")
		r.Header.Set("X-Original-URI", "/api/things?page=2")
		r.Header.Set("X-Forwarded-For", "203.0.113.7")
	}
	b.Run("serial", func(b *testing.B) {
		ctx, _, _ := handlerCtx("127.0.0.2", setup)
		b.ReportAllocs()
		for b.Loop() {
			ctx.Response.Reset() // forward-auth leaves the request unchanged
			be.proxy.Handler(ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var mu sync.Mutex
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			ctx, _, _ := handlerCtx("127.0.0.2", setup)
			mu.Unlock()
			for pb.Next() {
				ctx.Response.Reset()
				be.proxy.Handler(ctx)
			}
		})
	})
}

// BenchmarkBaselinePlainProxy is the twin of BenchmarkGateway/proxy_*: a bare
// fasthttp reverse proxy with the gateway's own server and upstream client
// (the same timeouts, body streaming and header settings: Proxy.NewServer
// and the upstream's HostClient, whose connections carry the deadlines),
// whose handler only forwards. The
// difference to proxy_public is what scopegate's own work costs (routing,
// header hygiene, X-Forwarded-*, request id, metrics); the in-memory
// listeners make deadlines costlier than on sockets, so the twin carries
// them too.
func BenchmarkBaselinePlainProxy(b *testing.B) {
	be := newBenchEnv(b, true)
	defer be.stop()
	hc, err := be.proxy.cfg.UpstreamClient(be.proxy.cfg.Upstreams[0])
	if err != nil {
		b.Fatal(err)
	}
	srv := be.proxy.NewServer()
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	}
	gw := fasthttputil.NewInmemoryListener()
	go srv.Serve(gw)
	defer srv.Shutdown()
	twin := &benchEnv{gw: gw}
	setup := func(r *fasthttp.Request) { r.SetRequestURI("http://gw.bench/healthz") }
	for _, par := range []bool{false, true} {
		name := "serial"
		if par {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) { runHTTP(b, twin.client("127.0.0.1"), setup, 200, par) })
	}
}
