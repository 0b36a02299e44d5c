package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
)

// CORS (SPEC §11). The policy decides (which origins, methods and headers a
// preflight may ask for, and whether an Origin may read answers); the proxy
// only reads the request fields and writes the headers:
//
//   - corsPrepare, once the request's header is scanned, notes the cors:
//     block in force and whether the request's Origin is allowed (the
//     header buffers it reads are rewritten before forwarding);
//   - decide answers a preflight (OPTIONS + Origin +
//     Access-Control-Request-Method) through [policy.Engine.Preflight] on
//     the front ends that can pass a 204 to the browser (the traffic
//     listener, Envoy's /_auth/envoy and the gRPC check). nginx and Traefik
//     let any 2xx of the auth call through to the app, so /_auth itself
//     decides an OPTIONS like any request (configs/ sends preflights to
//     the traffic listener instead);
//   - corsAnswer, deferred in the handler so that every answer passes
//     through it (allowed, forwarded, denied, bad request, panic), drops an
//     upstream's own Access-Control-* headers and, for an allowed Origin,
//     adds Access-Control-Allow-Origin, Vary: Origin, -Expose-Headers and
//     -Allow-Credentials.
var (
	hdrACAO  = []byte("Access-Control-Allow-Origin")
	hdrACAC  = []byte("Access-Control-Allow-Credentials")
	hdrACEH  = []byte("Access-Control-Expose-Headers")
	hdrACAM  = []byte("Access-Control-Allow-Methods")
	hdrACAH  = []byte("Access-Control-Allow-Headers")
	hdrACMA  = []byte("Access-Control-Max-Age")
	hdrACAPN = []byte("Access-Control-Allow-Private-Network")
	hdrVary  = []byte("Vary")

	valTrue   = []byte("true")
	valOrigin = []byte("Origin")

	// upstreamCORSHeaders are the response headers scopegate owns when the
	// routes file has a cors: block.
	upstreamCORSHeaders = [...][]byte{hdrACAO, hdrACAC, hdrACEH, hdrACAM, hdrACAH, hdrACMA, hdrACAPN}
)

// corsPrepare notes the cors: block in force and whether the request's
// Origin may read answers. It does not allocate once st's buffer has grown.
func (p *Proxy) corsPrepare(st *reqState) {
	c := p.engine.CORS()
	if c == nil {
		return
	}
	st.cors = c
	if len(st.hdr.origin) == 0 || st.hdr.originLines > 1 {
		return // a repeated Origin is origin_not_allowed (or cors_rejected)
	}
	st.corsOrigin = append(st.corsOrigin[:0], st.hdr.origin...)
	st.corsAllowed = c.OriginAllowed(bytesconv.String(st.corsOrigin), p.store.ClientOrigins())
}

// isPreflight reports whether st.req (filled) is a CORS preflight this front
// end answers: OPTIONS with an Origin and an Access-Control-Request-Method,
// with a cors: block in force.
func (p *Proxy) isPreflight(st *reqState) bool {
	return st.preflightOK && st.cors != nil && st.hdr.acrMethod != nil && st.req.Origin != "" &&
		st.req.Method == fasthttp.MethodOptions
}

// preflight decides st.req as a CORS preflight. ok is false when the
// policy does not answer it as one (no route for the requested method): it
// is then decided as an ordinary request.
func (p *Proxy) preflight(st *reqState) (d policy.Decision, ok bool) {
	acrh := bytesconv.String(st.hdr.acrHeaders)
	if st.hdr.acrHeadersLines > 1 {
		// Several lines are one list (RFC 9110 §5.3).
		j := st.keys[:0]
		for i, v := range st.values.h.PeekAll("Access-Control-Request-Headers") {
			if i > 0 {
				j = append(j, ',')
			}
			j = append(j, v...)
		}
		st.keys = j
		acrh = bytesconv.String(j)
	}
	c, d := p.engine.Preflight(policy.PreflightRequest{Req: &st.req, Method: bytesconv.String(st.hdr.acrMethod), Headers: acrh},
		p.store.ClientOrigins())
	if c == nil {
		return d, false
	}
	st.preflight = true
	return d, true
}

// writePreflight answers an allowed preflight: 204 with the origin, the
// allowed methods and headers, the max age and Vary: Origin. The preflight
// is never forwarded.
func (p *Proxy) writePreflight(ctx *fasthttp.RequestCtx, st *reqState) {
	c := st.cors
	resp := &ctx.Response
	resp.SetStatusCode(fasthttp.StatusNoContent)
	h := &resp.Header
	h.SetCanonical(hdrACAO, st.corsOrigin)
	h.SetCanonical(hdrACAM, bytesconv.Bytes(c.AllowMethods()))
	if v := c.AllowHeaders(); v != "" {
		h.SetCanonical(hdrACAH, bytesconv.Bytes(v))
	}
	h.SetCanonical(hdrACMA, bytesconv.Bytes(c.MaxAge()))
	if c.Credentials() {
		h.SetCanonical(hdrACAC, valTrue)
	}
	h.SetCanonical(hdrVary, valOrigin)
}

// corsAnswer finishes every answer while a cors: block is in force: an
// upstream's own CORS headers are dropped, and an answer to an allowed
// Origin (other than a preflight's, which has its own or, denied, none)
// carries Access-Control-Allow-Origin, Vary: Origin,
// Access-Control-Expose-Headers and, with allow_credentials,
// Access-Control-Allow-Credentials.
func (p *Proxy) corsAnswer(ctx *fasthttp.RequestCtx, st *reqState) {
	c := st.cors
	if c == nil || st.preflight {
		return
	}
	h := &ctx.Response.Header
	for _, k := range upstreamCORSHeaders {
		h.DelBytes(k)
	}
	if !st.corsAllowed {
		return
	}
	h.SetCanonical(hdrACAO, st.corsOrigin)
	if v := c.ExposeHeaders(); v != "" {
		h.SetCanonical(hdrACEH, bytesconv.Bytes(v))
	}
	if c.Credentials() {
		h.SetCanonical(hdrACAC, valTrue)
	}
	addVaryOrigin(h)
}

// addVaryOrigin adds Origin to the answer's Vary unless a Vary line names
// it already or is "*".
func addVaryOrigin(h *fasthttp.ResponseHeader) {
	for _, v := range h.PeekAll("Vary") {
		for len(v) > 0 {
			tok := v
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				v = nil
			}
			tok = bytes.Trim(tok, " \t")
			if equalFoldASCII(tok, "Origin") || string(tok) == "*" {
				return
			}
		}
	}
	h.AddBytesKV(hdrVary, valOrigin)
}
