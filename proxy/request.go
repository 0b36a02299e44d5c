package proxy

import (
	"bytes"
	"net"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/upstream"
)

// Pre-declared header names and values (fasthttp strings.go style).
var (
	hdrRequestID     = []byte("X-Request-Id")
	hdrClientKey     = []byte("X-Client-Key")
	hdrAuthorization = []byte("Authorization")
	hdrXFF           = []byte("X-Forwarded-For")
	hdrXFProto       = []byte("X-Forwarded-Proto")
	hdrXFHost        = []byte("X-Forwarded-Host")
)

// reqState is the per-request scratch space, pooled so the hot path does
// not allocate. Everything in it is reset before it goes back to the pool.
type reqState struct {
	req     policy.Request
	values  valueSource
	reqID   []byte
	scratch []byte
	pathBuf []byte            // policy.Request.Scratch: the decoded path
	up      upstream.Exchange // the exchange with the upstream (proxy mode)
	sub     string            // the verified JWT subject, for the decision log
	// credDeadline is when the credential stops being accepted: the API
	// key's expires_at, the JWT's exp plus leeway (zero: never), for a
	// tunnel's expiry.
	credDeadline time.Time
	hdr          headerIndex // the fields the decision reads (scanned once)
	names        [][]byte    // header names to delete (copied)
	keys         []byte      // backing store for names

	// CORS (SPEC §11), set by corsPrepare when the routes have a cors:
	// block and answered by corsAnswer.
	cors        *policy.CORS
	corsOrigin  []byte // the request's Origin, copied
	corsAllowed bool   // the Origin may read answers
	preflightOK bool   // this front end answers preflights itself
	preflight   bool   // the request was decided as a preflight

	fault policy.Reason // CheckEnvoy: a denial its attributes already decided
	// removesHeaders: the front end removes the client's headers the
	// answer names (the gRPC check's headers_to_remove), so a '_' spelling
	// of an identity header is removed there rather than refused.
	removesHeaders bool

	// knownClient: the store knew the presented client_key (it may be
	// logged; another one may be a secret sent in the wrong field).
	knownClient bool
	xri         []byte // X-Real-IP lines joined (realIP)

	// route is the index of the route the decision matched in routes (the
	// routes file it was decided with), -1 when none did: the request
	// counters' label.
	route  int
	routes *policy.Routes
}

func (st *reqState) reset() {
	st.req = policy.Request{}
	st.values.reset()
	st.reqID = st.reqID[:0]
	st.scratch = st.scratch[:0]
	st.up.Reset()
	st.sub = ""
	st.knownClient = false
	st.removesHeaders = false
	st.xri = st.xri[:0]
	st.credDeadline = time.Time{}
	st.hdr = headerIndex{}
	st.names = st.names[:0]
	st.keys = st.keys[:0]
	st.cors = nil
	st.corsOrigin = st.corsOrigin[:0]
	st.corsAllowed, st.preflightOK, st.preflight = false, false, false
	st.fault = policy.ReasonNone
	st.route, st.routes = -1, nil
}

// valueSource serves the request headers and query parameters a route's
// scope may read. In forward-auth mode the query is the forwarded URI's.
type valueSource struct {
	h        *fasthttp.RequestHeader
	rawQuery []byte // the raw query string (no '?'), copied
	args     fasthttp.Args
	parsed   bool

	read []string // the header names Header was asked for (decisionRead)
}

func (v *valueSource) reset() {
	v.h = nil
	clear(v.read)
	v.read = v.read[:0]
	v.rawQuery = v.rawQuery[:0]
	v.args.Reset()
	v.parsed = false
}

// Header returns the first value of the request header name and how many
// times the header occurs (0 when it is absent or empty). An underscore
// spelling (X_Site_Key for X-Site-Key) counts as a copy: a CGI-style
// upstream reads it as the same header, and in forward-auth mode the front
// proxy may pass it on.
func (v *valueSource) Header(name string) (string, int) {
	if v.h == nil {
		return "", 0
	}
	v.read = append(v.read, name)
	var first []byte
	n := 0
	for k, val := range v.h.All() {
		if equalHeaderName(k, name) {
			if n == 0 {
				first = val
			}
			n++
		}
	}
	if len(first) == 0 {
		return "", 0
	}
	return bytesconv.String(first), n
}

// Query returns the first value of the query parameter name, decoded, and
// how many times the parameter occurs, counting the keys an upstream could
// read as name (policy.SameQueryKey): "site[]", " site", "SITE" next to "site"
// make the value ambiguous, which the policy treats like a repeated
// parameter.
func (v *valueSource) Query(name string) (string, int) {
	if !v.parsed {
		v.args.ParseBytes(v.rawQuery)
		v.parsed = true
	}
	var first []byte
	n := 0
	for k, val := range v.args.All() {
		if bytesconv.String(k) == name || policy.SameQueryKey(bytesconv.String(k), name) {
			if n == 0 {
				first = val
			}
			n++
		}
	}
	return bytesconv.String(first), n
}

// peerAddr returns the connection's peer address, unmapped. It does not
// allocate. An unknown address type yields the zero Addr (never trusted,
// never in an allow-list).
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	// A plain-HTTP traffic connection parsed its peer once, at accept.
	// Under TLS ctx.Conn() is the *tls.Conn, and the contexts built for
	// Envoy's gRPC checks, explain and tunnels set their peer: those parse
	// RemoteAddr.
	if c, ok := ctx.Conn().(*coarseConn); ok {
		return c.peer
	}
	return addrOf(ctx.RemoteAddr())
}

// addrOf is a's IP address (IPv4-mapped addresses unmapped), the zero Addr
// for an address that is not TCP or UDP.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// splitTarget splits a request target (origin-form "/p?q", or absolute-form
// "http://host/p?q") into its raw path and raw query. A target that is
// neither (for example "*" or "p"), or that holds a '#' anywhere, yields ok
// false. A request target never carries a fragment (RFC 9112 §3.2), and a
// forwarded URI with one ("/public#/../private", which nginx passes on as
// $request_uri) means one path to the check and another to an upstream that
// does not cut at '#': it is path_invalid, never cut.
func splitTarget(target []byte) (path, query []byte, ok bool) {
	if len(target) == 0 || bytes.IndexByte(target, '#') >= 0 {
		return nil, nil, false
	}
	if target[0] != '/' {
		rest, found := cutScheme(target)
		if !found {
			return nil, nil, false
		}
		// The authority ends at the first '/' or '?' (RFC 3986 §3.2).
		i := bytes.IndexAny(rest, "/?")
		if i < 0 {
			return []byte("/"), nil, true
		}
		if rest[i] == '?' {
			return []byte("/"), rest[i+1:], true // "http://host?q": empty path
		}
		target = rest[i:]
	}
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		return target[:i], target[i+1:], true
	}
	return target, nil, true
}

func cutScheme(b []byte) ([]byte, bool) {
	for _, s := range [...]string{"http://", "https://"} {
		if len(b) >= len(s) && bytes.EqualFold(b[:len(s)], []byte(s)) {
			return b[len(s):], true
		}
	}
	return nil, false
}

// fill prepares st.req from the request: method, raw path, Origin,
// credential headers (from st.hdr) and the value source. Strings alias
// ctx's buffers.
func (p *Proxy) fill(ctx *fasthttp.RequestCtx, st *reqState, method, rawPath, rawQuery []byte) {
	h := &ctx.Request.Header
	st.values.h = h
	st.values.rawQuery = append(st.values.rawQuery[:0], rawQuery...)
	ch := policy.CredentialHeaders{
		APIKey:        bytesconv.String(st.hdr.apiKey),
		ClientKey:     bytesconv.String(st.hdr.clientKey),
		Authorization: bytesconv.String(st.hdr.authorization),
	}
	if p.cfg.JWTCookie != "" {
		ch.JWTCookie = bytesconv.String(h.Cookie(p.cfg.JWTCookie))
	}
	st.req = policy.Request{
		Method:  bytesconv.String(method),
		RawPath: bytesconv.String(rawPath),
		Origin:  bytesconv.String(st.hdr.origin),
		// A repeated Origin is denied (origin_not_allowed), never
		// decided by its first line while both are forwarded.
		OriginRepeated: st.hdr.originLines > 1,
		Cred:           policy.ParseCredential(ch),
		Values:         &st.values,
	}
}

// realIP returns the X-Real-IP value for policy.Engine.ClientIP: the one
// line, or the lines joined with "," when there are several, which
// ClientIP refuses (X-Real-IP names one address: a second line means a
// proxy appended rather than replaced, so neither can be trusted).
func (st *reqState) realIP(h *fasthttp.RequestHeader) string {
	if st.hdr.xRealIPLines <= 1 {
		return bytesconv.String(st.hdr.xRealIP)
	}
	b := st.xri[:0]
	for i, v := range h.PeekAll("X-Real-Ip") {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	st.xri = b
	return bytesconv.String(b)
}
