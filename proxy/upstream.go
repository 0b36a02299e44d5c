package proxy

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/upstream"
)

var (
	strHTTP  = []byte("http")
	strHTTPS = []byte("https")
)

// upstreamConfig is the upstream side's share of c.
func (c *Config) upstreamConfig() upstream.Config {
	return upstream.Config{
		URLs:           c.Upstreams,
		Timeout:        c.UpstreamTimeout,
		FailTimeout:    c.UpstreamFailTimeout,
		MaxConns:       c.UpstreamMaxConns,
		IdleTimeout:    c.UpstreamIdleTimeout,
		RootCAs:        c.UpstreamRootCAs,
		Dial:           c.UpstreamDial,
		MaxHeaderBytes: c.MaxHeaderBytes,
		MaxBodyBytes:   c.MaxBodyBytes,
	}
}

// UpstreamClient returns the keep-alive client the proxy sends requests for
// the upstream raw (one SCOPEGATE_UPSTREAM_URL entry) through, with c's pool
// size, idle timeout, dialer and UpstreamTimeout on every read and write of
// its connections (defaults applied). The benchmark's reference proxy uses
// it to pay for the same client. Like [upstream.HostClient], leave the
// client's ReadTimeout, WriteTimeout, MaxConnDuration and
// MaxResponseBodySize unset: its transport ignores them.
func (c Config) UpstreamClient(raw string) (*fasthttp.HostClient, error) {
	c.setDefaults()
	return upstream.HostClient(c.upstreamConfig(), raw)
}

// forward sends the authorized request to an upstream and streams the answer
// back. decided is when the decision ended: the upstream call is timed from
// it.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, st *reqState, d *policy.Decision, peer netip.Addr, trusted bool, decided time.Time) {
	if ctx.Request.Header.ConnectionClose() {
		// The client asked to close; Connection is removed from the
		// upstream request (hop-by-hop), so close the client connection
		// ourselves.
		defer ctx.Response.SetConnectionClose()
	}
	p.rewriteRequest(ctx, st, d, peer, trusted)
	o := p.upstreams.Do(&st.up, &ctx.Request, &ctx.Response, decided)
	p.m.upstreamSeconds.Update(st.up.Answered.Sub(decided).Seconds())
	if o != upstream.OK {
		p.upstreamFailed(ctx, st, o)
		return
	}
	p.passAnswer(ctx, st, d)
}

// rewriteRequest prepares the request for the upstream, in place: the
// hop-by-hop headers, incoming identity headers and (with StripCredentials)
// the credential are removed; X-Forwarded-For/-Proto/-Host, X-Request-Id
// and the identity headers set. From here on st.req's strings (which alias
// request headers) are stale, so st.req is cleared.
func (p *Proxy) rewriteRequest(ctx *fasthttp.RequestCtx, st *reqState, d *policy.Decision, peer netip.Addr, trusted bool) {
	h := &ctx.Request.Header
	stripCred := p.cfg.StripCredentials && st.req.Cred.Kind == policy.CredentialAPIKey
	inAuthz := st.req.Cred.InAuthorization
	st.req = policy.Request{}
	p.cleanRequestHeaders(h, st, !trusted)
	if stripCred {
		h.Del(p.cfg.APIKeyHeader)
		h.DelBytes(hdrClientKey)
		if inAuthz {
			h.DelBytes(hdrAuthorization)
		}
	}
	p.setForwarded(ctx, st, peer, trusted)
	h.SetCanonical(hdrRequestID, st.reqID)
	p.setIdentity(h, st, &d.Identity)
}

// upstreamFailed answers an exchange that did not end OK in place of
// whatever the upstream's answer had begun: the client's body failures are
// malformed requests (the client's fault, so they never mark the upstream
// down); the upstream's are counted, logged (the error without the input
// fasthttp quotes) and answered 502 upstream_unavailable or 504
// upstream_timeout.
func (p *Proxy) upstreamFailed(ctx *fasthttp.RequestCtx, st *reqState, o upstream.Outcome) {
	var a answer
	switch o {
	case upstream.BodyTooLarge:
		a = malformed(fasthttp.StatusRequestEntityTooLarge, "the request body is too large")
	case upstream.BodyTimedOut:
		a = malformed(fasthttp.StatusRequestTimeout, "the request body was not sent in time")
	case upstream.BodyMalformed:
		a = malformed(fasthttp.StatusBadRequest, "the request body could not be read")
	case upstream.Timeout:
		p.m.upstreamTimeouts.Inc()
		a = denial(&policy.Decision{Reason: policy.ReasonUpstreamTimeout}, false)
	default:
		p.m.upstreamUnavailable.Inc()
		a = denial(&policy.Decision{Reason: policy.ReasonUpstreamUnavailable}, false)
	}
	if a.reason != policy.ReasonNone {
		errText := ""
		if st.up.Err != nil {
			errText = unquoted(st.up.Err.Error())
		}
		p.log.LogAttrs(p.cfg.BaseContext, slog.LevelWarn, "upstream request failed",
			slog.String("upstream", st.up.Upstream), slog.String("err", errText),
			slog.String("reason", a.code), slog.String("request_id", string(st.reqID)))
	}
	a.restart = true
	p.writeAnswer(ctx, st, a)
}
