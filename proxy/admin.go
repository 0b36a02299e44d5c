package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
)

// AdminHandler serves the admin listener: /healthz (the process is up),
// /readyz (the store is reachable or within its stale TTL, and the rules are
// loaded), /metrics (Prometheus text format) and, with a console, the
// operator page at / and its API under /api/v1/ (SPEC §13). Any other path
// is 404. With an admin token, every path but /healthz and /readyz needs
// it (401 otherwise). Every answer carries X-Request-Id, as on the traffic
// listener.
func (p *Proxy) AdminHandler(ctx *fasthttp.RequestCtx) {
	st := p.pool.Get().(*reqState)
	defer p.release(st)
	p.requestID(ctx, st, ctx.Request.Header.PeekBytes(hdrRequestID))
	ctx.Response.Header.Set("Cache-Control", "no-store")
	path := string(ctx.Path())
	switch path {
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	case "/readyz":
		ctx.SetContentType("text/plain; charset=utf-8")
		if p.Ready(time.Now()) {
			ctx.SetBodyString("ready\n")
			return
		}
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("not ready\n")
		return
	}
	if !p.adminAuthorized(&ctx.Request.Header) {
		p.adminUnauthorized(ctx, path)
		return
	}
	switch {
	case path == "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		w := ctx.Response.BodyWriter()
		p.cfg.Metrics.WritePrometheus(w)
		for _, s := range p.cfg.ExtraMetrics {
			s.WritePrometheus(w)
		}
		metrics.WriteProcessMetrics(w)
	case p.console != nil && p.console.Serve(ctx):
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("not found\n")
	}
}

// adminAuthorized reports whether the request may use the admin paths: no
// admin token is configured, or Authorization carries it as a Bearer
// token. The comparison is of SHA-256 digests in constant time, so neither
// the token's bytes nor its length leak through timing.
func (p *Proxy) adminAuthorized(h *fasthttp.RequestHeader) bool {
	if !p.adminTokenSet {
		return true
	}
	scheme, tok := policy.SplitAuthorization(bytesconv.String(h.Peek("Authorization")))
	if tok == "" || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256(bytesconv.Bytes(tok))
	return subtle.ConstantTimeCompare(got[:], p.adminToken[:]) == 1
}

// adminUnauthorized answers 401. The page's own path answers the page too
// (it holds no data): a browser cannot send a header on navigation, so the
// page asks for the token and sends it with every API call.
func (p *Proxy) adminUnauthorized(ctx *fasthttp.RequestCtx, path string) {
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="scopegate-admin"`)
	switch {
	case path == "/" && p.console != nil && (ctx.IsGet() || ctx.IsHead()):
		p.console.ServePage(ctx)
	case strings.HasPrefix(path, "/api/"):
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"error":"the admin token is missing or wrong"}` + "\n")
	default:
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("the admin token is missing or wrong\n")
	}
	ctx.SetStatusCode(fasthttp.StatusUnauthorized)
}

// Ready reports whether the proxy can serve: the store is ready and the
// rules are loaded (SetRulesLoaded).
func (p *Proxy) Ready(now time.Time) bool {
	return !p.notLoaded.Load() && p.store.Ready(now)
}

// SetRulesLoaded records whether the routes (and other rules) are loaded;
// /readyz fails while they are not. A new Proxy counts as loaded, since cmd
// builds it only after the rules parsed.
func (p *Proxy) SetRulesLoaded(loaded bool) { p.notLoaded.Store(!loaded) }
