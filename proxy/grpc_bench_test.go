package proxy

import (
	"context"
	"maps"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/proxy/envoycheck"
)

// measure runs f (the benchmark loop) with allocations and the process CPU
// time per operation (client and server sides together for the network
// forms) reported.
func measure(b *testing.B, f func()) {
	b.ReportAllocs()
	defer reportCPU(b)()
	f()
}

// BenchmarkEnvoyCheck compares the two Envoy ext_authz transports on one
// decision, a cached API key allowed: the HTTP /_auth/envoy handler called
// directly and over a loopback connection, the gRPC seam (CheckEnvoy, the
// translation without the network), and a gRPC Check from the official
// stubs over a loopback connection.
func BenchmarkEnvoyCheck(b *testing.B) {
	e := newEnv(b, envOptions{noUpstream: true})
	tok := e.fix.Token("app")
	b.Run("http_handler", func(b *testing.B) {
		ctx, _, _ := handlerCtx("127.0.0.2", func(r *fasthttp.Request) {
			r.SetRequestURI("/_auth/envoy/api/things?page=2")
			r.Header.Set("X-API-Key", tok)
			r.Header.Set("X-Forwarded-For", "203.0.113.7")
		})
		measure(b, func() {
			for b.Loop() {
				ctx.Response.Reset()
				e.proxy.Handler(ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
		})
	})
	b.Run("http_loopback", func(b *testing.B) {
		hc := &fasthttp.HostClient{Addr: e.addr, Dial: func(addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: trustedPeer.AsSlice()}}
			return d.Dial("tcp", addr)
		}}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://gw.bench/_auth/envoy/api/things?page=2")
		req.Header.Set("X-API-Key", tok)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		measure(b, func() {
			for b.Loop() {
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Fatalf("%v %d", err, resp.StatusCode())
				}
			}
		})
	})
	b.Run("grpc_seam", func(b *testing.B) {
		hdrs := map[string]string{"x-api-key": tok, ":path": "/api/things?page=2", "x-request-id": "bench"}
		in := envoycheck.Request{Peer: trustedPeer, Source: trustedPeer, Method: "GET", Path: "/api/things?page=2",
			Headers: maps.All(hdrs)}
		measure(b, func() {
			for b.Loop() {
				if a := e.proxy.CheckEnvoy(&in); a.Status != 200 {
					b.Fatalf("status %d", a.Status)
				}
			}
		})
	})
	b.Run("grpc_loopback", func(b *testing.B) {
		client := authv3.NewAuthorizationClient(startGRPC(b, e).conn(b, trustedPeer))
		req := checkRequest("GET", "/api/things?page=2", "203.0.113.7", "X-API-Key", tok)
		ctx := context.Background()
		measure(b, func() {
			for b.Loop() {
				resp, err := client.Check(ctx, req)
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatalf("%v %v", resp, err)
				}
			}
		})
	})
}
