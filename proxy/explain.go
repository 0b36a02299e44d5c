package proxy

import (
	"net"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// Answer is what the handler answered to a described request.
type Answer struct {
	Status int
	Header [][2]string // name, value; in the order written
	Body   []byte
}

// ServeDescribed runs [Proxy.Handler] on one request described outside HTTP
// (method, request target, header fields, the connection's peer), as if it
// had arrived on the traffic listener, and returns the answer. `scopegate
// explain` uses it so that the decision it explains is the one serve makes,
// step for step. A Proxy built with upstreams forwards an allowed request;
// explain builds one without, which answers 200.
func (p *Proxy) ServeDescribed(method, requestURI string, header [][2]string, peer netip.AddrPort) Answer {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.Header.SetRequestURI(requestURI)
	req.Header.SetHost("localhost")
	for _, h := range header {
		if strings.EqualFold(h[0], "Host") {
			req.Header.SetHost(h[1])
			continue
		}
		req.Header.Add(h[0], h[1])
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, net.TCPAddrFromAddrPort(peer), nil)
	p.Handler(&ctx)
	a := Answer{Status: ctx.Response.StatusCode(), Body: append([]byte(nil), ctx.Response.Body()...)}
	for k, v := range ctx.Response.Header.All() {
		a.Header = append(a.Header, [2]string{string(k), string(v)})
	}
	return a
}
