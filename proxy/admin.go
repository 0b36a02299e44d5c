package proxy

import (
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// AdminHandler serves the admin listener: /healthz (the process is up),
// /readyz (the store is reachable or within its stale TTL, and the rules are
// loaded) and /metrics (Prometheus text format). Any other path is 404.
// Every answer carries X-Request-Id, as on the traffic listener.
func (p *Proxy) AdminHandler(ctx *fasthttp.RequestCtx) {
	st := p.pool.Get().(*reqState)
	defer p.release(st)
	p.requestID(ctx, st, ctx.Request.Header.PeekBytes(hdrRequestID))
	ctx.Response.Header.Set("Cache-Control", "no-store")
	switch string(ctx.Path()) {
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
	case "/readyz":
		ctx.SetContentType("text/plain; charset=utf-8")
		if p.Ready(time.Now()) {
			ctx.SetBodyString("ready\n")
			return
		}
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetBodyString("not ready\n")
	case "/metrics":
		ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
		w := ctx.Response.BodyWriter()
		p.cfg.Metrics.WritePrometheus(w)
		for _, s := range p.cfg.ExtraMetrics {
			s.WritePrometheus(w)
		}
		metrics.WriteProcessMetrics(w)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("not found\n")
	}
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
