package proxy

import (
	"bufio"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkCleanHeaders measures the header hygiene of one proxied request
// and its answer: a typical request without hop-by-hop fields (nothing to
// delete), and one with them (parsed again on every iteration, since the
// fields are deleted; the parse is included in that case's time).
func BenchmarkCleanHeaders(b *testing.B) {
	const plainReq = "GET /api/orders/1 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: bench\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip\r\nX-API-Key: ck_abc.secret\r\nCookie: a=b\r\n\r\n"
	const plainResp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n" +
		"Date: Fri, 27 Nov 2026 08:00:00 GMT\r\nX-Upstream: 1\r\n\r\n{\"ok\":true}"
	const hopReq = "GET /api/orders/1 HTTP/1.1\r\nHost: api.example.com\r\nConnection: keep-alive, X-Hop\r\n" +
		"X-Hop: 1\r\nKeep-Alive: 300\r\nTe: trailers\r\nX-Auth-User-Id: 7\r\nX-API-Key: ck_abc.secret\r\n\r\n"
	for _, c := range []struct {
		name, req, resp string
		reparse         bool
	}{
		{"clean", plainReq, plainResp, false},
		{"hop_by_hop", hopReq, plainResp, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			p := &Proxy{prefix: "X-Auth-"}
			st := new(reqState)
			var req fasthttp.Request
			var resp fasthttp.Response
			resp.Header.DisableNormalizing()
			rr, rs := strings.NewReader(c.req), strings.NewReader(c.resp)
			br, bs := bufio.NewReader(rr), bufio.NewReader(rs)
			read := func() {
				rr.Reset(c.req)
				rs.Reset(c.resp)
				br.Reset(rr)
				bs.Reset(rs)
				if err := req.Read(br); err != nil {
					b.Fatal(err)
				}
				if err := resp.Read(bs); err != nil {
					b.Fatal(err)
				}
			}
			read()
			b.ReportAllocs()
			for b.Loop() {
				if c.reparse {
					read()
				}
				p.cleanRequestHeaders(&req.Header, st, true)
				cleanResponseHeaders(&resp.Header, st, true)
			}
		})
	}
}
