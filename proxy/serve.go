package proxy

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
)

// authMode tells which front end a request target addresses.
type authMode uint8

const (
	modeProxy authMode = iota // anything outside AuthPath
	modeAuth                  // AuthPath: nginx and Traefik conventions
	modeEnvoy                 // AuthPath/envoy + original path
	modeOther                 // another path under AuthPath/: never proxied
)

// authMode classifies the raw path of the request target.
func (p *Proxy) authMode(path []byte) authMode {
	if !bytes.HasPrefix(path, bytesconv.Bytes(p.authPath)) {
		return modeProxy
	}
	rest := path[len(p.authPath):]
	switch {
	case len(rest) == 0:
		return modeAuth
	case rest[0] != '/':
		return modeProxy // "/_authx"
	}
	if bytes.HasPrefix(path, bytesconv.Bytes(p.envoyPath)) {
		r := path[len(p.envoyPath):]
		if len(r) == 0 || r[0] == '/' {
			return modeEnvoy
		}
	}
	return modeOther
}

// trustedForwarded returns the X-Forwarded-For (all its lines joined) and
// X-Real-IP values when peer is a trusted proxy, else "" for both: an
// untrusted peer's forwarded headers are never read.
func (p *Proxy) trustedForwarded(ctx *fasthttp.RequestCtx, st *reqState, peer netip.Addr) (trusted bool, xff, xri string) {
	if !p.engine.IsTrustedProxy(peer) {
		return false, "", ""
	}
	if st.hdr.xffLines <= 1 {
		return true, bytesconv.String(st.hdr.xff), st.realIP(&ctx.Request.Header)
	}
	// Several X-Forwarded-For lines are one list (RFC 9110 §5.3).
	all := ctx.Request.Header.PeekAll(string(hdrXFF))
	j := append(st.keys[:0], all[0]...)
	for _, v := range all[1:] {
		j = append(j, ',')
		j = append(j, v...)
	}
	st.keys = j
	xff = bytesconv.String(j)
	return true, xff, st.realIP(&ctx.Request.Header)
}

// serveProxy handles a request outside AuthPath: decide, then forward (or
// answer 200 in decision-only mode) or deny.
func (p *Proxy) serveProxy(ctx *fasthttp.RequestCtx, st *reqState) {
	start := requestTime(ctx)
	if ctx.IsConnect() {
		// A tunnel to anywhere: never (an upstream that took it would
		// stop parsing HTTP on that connection).
		p.writeAnswer(ctx, st, malformed(fasthttp.StatusMethodNotAllowed, "the CONNECT method is not supported"))
		return
	}
	d, peer, trusted := p.proxyDecision(ctx, st, start, false)
	decided := time.Now() // the decision's end and the upstream call's start
	if !p.settle(ctx, st, &d, decided.Sub(start), false) {
		return
	}
	if st.preflight {
		p.writePreflight(ctx, st)
		return
	}
	if p.upstreams == nil {
		p.writeAllow(ctx, st, &d)
		return
	}
	switch upgradeOf(&ctx.Request.Header) {
	case upgradeWebSocket:
		p.openTunnel(ctx, st, &d, peer, trusted, decided)
	case upgradeInvalid:
		p.writeAnswer(ctx, st, malformed(fasthttp.StatusBadRequest, errTunnelInvalid))
	default:
		p.forward(ctx, st, &d, peer, trusted, decided)
	}
}

// proxyDecision decides a request outside AuthPath as of now; recheck
// decides an open tunnel's handshake again (no token bucket).
func (p *Proxy) proxyDecision(ctx *fasthttp.RequestCtx, st *reqState, now time.Time, recheck bool) (d policy.Decision, peer netip.Addr, trusted bool) {
	peer = peerAddr(ctx)
	path, query, ok := splitTarget(ctx.Request.Header.RequestURI())
	if !ok {
		return policy.Denied(policy.ReasonPathInvalid), peer, false
	}
	p.fill(ctx, st, ctx.Method(), path, query)
	st.req.Recheck = recheck
	st.preflightOK = true
	trusted, xff, xri := p.trustedForwarded(ctx, st, peer)
	return p.decide(st, peer, xff, xri, now), peer, trusted
}

// serveForwardAuth answers nginx auth_request, Traefik ForwardAuth and Envoy
// ext_authz (HTTP) calls. Only trusted proxies may call it; the original
// request comes from X-Forwarded-Method/-Uri (Traefik), X-Original-Method/
// -URI (nginx) or, for Envoy, the method and the path after AuthPath/envoy.
func (p *Proxy) serveForwardAuth(ctx *fasthttp.RequestCtx, st *reqState, mode authMode, target []byte) {
	start := requestTime(ctx)
	peer := peerAddr(ctx)
	d := p.forwardAuthDecision(ctx, st, mode, target, peer, start)
	if !p.settle(ctx, st, &d, time.Since(start), true) {
		return
	}
	if st.preflight {
		// Envoy passes any answer but 200 to the client: the 204 is the
		// browser's answer, and the preflight goes no further.
		p.writePreflight(ctx, st)
		return
	}
	p.writeAllow(ctx, st, &d)
	if mode == modeEnvoy {
		p.envoyRemoveUnset(ctx, st, &d.Identity)
	}
}

var hdrEnvoyRemove = []byte("X-Envoy-Auth-Headers-To-Remove")

// envoyRemoveUnset lists the identity headers the answer does not set in
// x-envoy-auth-headers-to-remove, so Envoy strips client-sent copies of them
// (allowed_upstream_headers only overwrites the ones that are set).
func (p *Proxy) envoyRemoveUnset(ctx *fasthttp.RequestCtx, st *reqState, id *policy.Identity) {
	b := st.scratch[:0]
	add := func(name string) {
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, name...)
	}
	for _, f := range p.identityFields(id) {
		if f.value == "" {
			add(f.name)
		}
	}
	if !hasScope(id) {
		add(p.hdrScope)
	}
	if len(b) > 0 {
		ctx.Response.Header.SetCanonical(hdrEnvoyRemove, b)
	}
	st.scratch = b[:0]
}

func (p *Proxy) forwardAuthDecision(ctx *fasthttp.RequestCtx, st *reqState, mode authMode, target []byte, peer netip.Addr, now time.Time) policy.Decision {
	trusted, xff, xri := p.trustedForwarded(ctx, st, peer)
	if !trusted {
		return policy.Denied(policy.ReasonForwardedUntrusted)
	}
	if st.fault != policy.ReasonNone {
		return policy.Denied(st.fault)
	}
	if p.identityHeaderSent(&ctx.Request.Header, st) {
		return policy.Denied(policy.ReasonIdentityHeaderSent)
	}
	var method, path, query []byte
	switch mode {
	case modeEnvoy:
		full, q, ok := splitTarget(target)
		if !ok {
			return policy.Denied(policy.ReasonPathInvalid)
		}
		method, path, query = ctx.Method(), full[len(p.envoyPath):], q
		if len(path) == 0 {
			path = slash
		}
	case modeAuth:
		var ok bool
		if st.hdr.repeatedRequestField {
			return policy.Denied(policy.ReasonForwardedInvalid)
		}
		if method, ok = oneOf(st.hdr.xfMethod, st.hdr.xOrigMethod); !ok {
			return policy.Denied(policy.ReasonForwardedInvalid)
		}
		uri, ok := oneOf(st.hdr.xfURI, st.hdr.xOrigURI)
		if !ok || len(method) == 0 || len(uri) == 0 {
			return policy.Denied(policy.ReasonForwardedInvalid)
		}
		if path, query, ok = splitTarget(uri); !ok {
			return policy.Denied(policy.ReasonPathInvalid)
		}
	default:
		return policy.Denied(policy.ReasonNoRoute)
	}
	p.fill(ctx, st, method, path, query)
	st.preflightOK = mode == modeEnvoy
	return p.decide(st, peer, xff, xri, now)
}

var slash = []byte("/")

// oneOf picks the Traefik or the nginx form of a forwarded value. When a
// request carries both and they differ, one of them was forged by the client
// behind the other proxy (each proxy only overwrites its own convention), so
// it is not ok.
func oneOf(traefik, nginx []byte) ([]byte, bool) {
	switch {
	case len(traefik) == 0:
		return nginx, true
	case len(nginx) == 0:
		return traefik, true
	case bytes.Equal(traefik, nginx):
		return traefik, true
	}
	return nil, false
}

// writeAllow answers an allowed forward-auth (or decision-only) request:
// 200, empty body, identity and rate-limit headers.
func (p *Proxy) writeAllow(ctx *fasthttp.RequestCtx, st *reqState, d *policy.Decision) {
	ctx.Response.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetCanonical(hdrCacheControl, valNoStore)
	p.setIdentity(&ctx.Response.Header, st, &d.Identity)
	p.setRateLimitHeaders(ctx, st, &d.RateLimit, false)
}

// requestTime is when fasthttp began serving the request (read once per
// request by the server itself), else now. Reading the clock costs about
// 0.1 µs on the virtual machines measured, and a request used to read it
// five times.
func requestTime(ctx *fasthttp.RequestCtx) time.Time {
	if t := ctx.Time(); !t.IsZero() {
		return t
	}
	return time.Now()
}

// settle records d (which took took) and, when it denies, answers it; it
// reports whether d allows, so the caller goes on.
func (p *Proxy) settle(ctx *fasthttp.RequestCtx, st *reqState, d *policy.Decision, took time.Duration, forwardAuth bool) bool {
	// The routes the decision was made with (set by the match), not the
	// engine's now: a reload may have swapped them since.
	st.route, st.routes = d.Route, st.req.Routes
	if d.Allowed() {
		p.observe(st, d, nil, took, forwardAuth)
		return true
	}
	a := denial(d, forwardAuth)
	p.observe(st, d, &a, took, forwardAuth)
	p.writeAnswer(ctx, st, a)
	return false
}

// observe records the metrics and the decision log line for d, which took
// took; a is the answer to a denial (nil when d allows), so the log's status
// and reason are those the client gets.
func (p *Proxy) observe(st *reqState, d *policy.Decision, a *answer, took time.Duration, forwardAuth bool) {
	p.m.decisionSeconds.Update(took.Seconds())
	if a == nil {
		p.m.allowed.Inc()
	} else {
		p.m.denied(a.reason).Inc()
		if a.reason == policy.ReasonRateLimited {
			p.m.rateLimited.Inc()
		}
	}
	p.observeConsole(st, d, a, took)
	if a == nil && !p.cfg.LogAllowed {
		return
	}
	level := slog.LevelInfo
	if !p.log.Enabled(p.cfg.BaseContext, level) {
		return
	}
	decision, reason, status := "allow", "", fasthttp.StatusOK
	if st.preflight {
		status = fasthttp.StatusNoContent
	}
	if a != nil {
		decision, reason, status = "deny", a.code, a.status
	}
	mode := "proxy"
	if forwardAuth {
		mode = "forward_auth"
	}
	// Copies: the log handler may keep what it is given.
	attrs := [...]slog.Attr{
		slog.String("decision", decision),
		slog.String("reason", reason),
		slog.Int("status", status),
		slog.String("mode", mode),
		slog.String("method", strings.Clone(st.req.Method)),
		slog.String("path", strings.Clone(st.req.RawPath)),
		slog.String("client_ip", clientIPString(st.req.ClientIP)),
		slog.String("request_id", string(st.reqID)),
		{}, // route
		{}, // user_sub or client_key
	}
	n := len(attrs) - 2
	if d.Route >= 0 {
		// The route by its pattern as written in the routes file; absent
		// when no route matched.
		attrs[n] = slog.String("route", st.routes.Path(d.Route))
		n++
	}
	switch {
	case d.Identity.UserSub != "":
		attrs[n] = slog.String("user_sub", d.Identity.UserSub)
		n++
	case st.sub != "":
		attrs[n] = slog.String("user_sub", truncate(st.sub, 256))
		n++
	case d.Identity.ClientKey != "":
		attrs[n] = slog.String("client_key", d.Identity.ClientKey)
		n++
	case st.req.Cred.Kind == policy.CredentialAPIKey && st.req.Cred.ClientKey != "":
		attrs[n] = st.presentedClientKey()
		n++
	}
	p.log.LogAttrs(p.cfg.BaseContext, level, "decision", attrs[:n]...)
}

func clientIPString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// truncate copies at most n bytes of s.
func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Clone(s)
}
