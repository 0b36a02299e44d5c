package console

import (
	"bufio"
	"encoding/json"
	"time"

	"github.com/valyala/fasthttp"
)

// The API paths of SPEC §13.
const (
	PathOverview  = "/api/v1/overview"
	PathClients   = "/api/v1/clients"
	PathRoutes    = "/api/v1/routes"
	PathDecisions = "/api/v1/decisions"
	PathStream    = "/api/v1/decisions/stream"
)

// Serve answers the console's paths on the admin listener: the page at "/"
// and the API under /api/v1/. It reports false, answering nothing, for any
// other path. Only GET and HEAD are served (405 otherwise).
func (c *Console) Serve(ctx *fasthttp.RequestCtx) bool {
	path := string(ctx.Path())
	var h func(*fasthttp.RequestCtx)
	switch path {
	case "/":
		h = c.ServePage
	case PathOverview:
		h = c.jsonHandler(func(now time.Time) any { return c.overview(now) })
	case PathClients:
		h = c.jsonHandler(func(now time.Time) any { return map[string]any{"clients": c.clientViews(now)} })
	case PathRoutes:
		h = c.jsonHandler(func(time.Time) any { return map[string]any{"routes": c.routeViews()} })
	case PathDecisions:
		h = c.jsonHandler(func(time.Time) any { return map[string]any{"decisions": c.ring.recent()} })
	case PathStream:
		h = c.serveStream
	default:
		return false
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("method not allowed\n")
		return true
	}
	h(ctx)
	return true
}

// jsonHandler answers with build's value as JSON.
func (c *Console) jsonHandler(build func(now time.Time) any) func(*fasthttp.RequestCtx) {
	return func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
		enc := json.NewEncoder(ctx)
		if err := enc.Encode(build(c.now())); err != nil {
			ctx.Error(`{"error":"encoding failed"}`, fasthttp.StatusInternalServerError)
		}
	}
}

// overviewView is /api/v1/overview.
type overviewView struct {
	Version       string `json:"version"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	StartedAt     string `json:"started_at"`
	Now           string `json:"now"`
	Store         struct {
		Kind       string  `json:"kind"`
		State      string  `json:"state"`
		LastReload *string `json:"last_reload"`
	} `json:"store"`
	Clients struct {
		Active    int `json:"active"`
		Suspended int `json:"suspended"`
		Revoked   int `json:"revoked"`
	} `json:"clients"`
	Routes    int `json:"routes"`
	RateLimit struct {
		Backend string `json:"backend"`
		State   string `json:"state"`
	} `json:"rate_limit"`
	LatencyMs latencyView  `json:"latency_ms"` // over the last 60 minutes
	Minutes   []minuteView `json:"minutes"`
	Totals    struct {
		Allowed uint64 `json:"allowed"`
		Denied  uint64 `json:"denied"`
	} `json:"totals"` // since start
	Stream struct {
		Subscribers int    `json:"subscribers"`
		Dropped     uint64 `json:"dropped"`
	} `json:"stream"`
	Settings []Setting `json:"settings"`
}

func (c *Console) overview(now time.Time) *overviewView {
	v := &overviewView{
		Version:       c.cfg.Version,
		UptimeSeconds: int64(now.Sub(c.started).Seconds()),
		StartedAt:     c.started.UTC().Format(time.RFC3339),
		Now:           now.UTC().Format(time.RFC3339),
		Routes:        c.cfg.Routes.Routes().Len(),
		Settings:      c.cfg.Settings,
	}
	if v.Settings == nil {
		v.Settings = []Setting{}
	}
	v.Store.Kind = c.cfg.StoreKind
	if c.cfg.Store != nil {
		state, last := c.cfg.Store.State(now)
		v.Store.State = state
		if !last.IsZero() {
			v.Store.LastReload = timeString(last)
		}
	}
	for _, cl := range c.syncClients() {
		switch cl.Status() {
		case "active":
			v.Clients.Active++
		case "suspended":
			v.Clients.Suspended++
		case "revoked":
			v.Clients.Revoked++
		}
	}
	v.RateLimit.Backend, v.RateLimit.State = c.cfg.RateLimitBackend, "ok"
	if c.cfg.RateLimitState != nil {
		v.RateLimit.State = c.cfg.RateLimitState()
	}
	v.Minutes, v.LatencyMs = c.lastHour(now)
	v.Totals.Allowed, v.Totals.Denied = c.allowed.Load(), c.denied.Load()
	v.Stream.Subscribers, v.Stream.Dropped = c.subs.count(), c.subs.dropped.Load()
	return v
}

// Stream timing: a comment line keeps idle connections alive (and finds
// vanished browsers); each write must finish within streamWriteTimeout.
const (
	streamPing         = 15 * time.Second
	streamWriteTimeout = 10 * time.Second
)

// serveStream sends each new denial as a server-sent event, "data: {...}".
// The request path only offers sequence numbers to the stream's buffer
// (never waiting); a browser that reads too slowly misses denials (counted
// in overview's stream.dropped) and one that vanished is found by the next
// write failing.
func (c *Console) serveStream(ctx *fasthttp.RequestCtx) {
	sub := c.subs.add(c.cfg.MaxSubscribers)
	if sub == nil {
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("too many open streams\n")
		return
	}
	if ctx.IsHead() {
		c.subs.remove(sub)
		ctx.SetContentType("text/event-stream")
		return
	}
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	done := ctx.Done()
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer c.subs.remove(sub)
		ping := time.NewTicker(streamPing)
		defer ping.Stop()
		if !c.flush(ctx, w, []byte("retry: 3000\n: connected\n\n")) {
			return
		}
		var buf []byte
		for {
			select {
			case seq := <-sub.ch:
				buf = buf[:0]
				for more := true; more; {
					buf = c.appendEvent(buf, seq)
					select {
					case seq = <-sub.ch:
					default:
						more = false
					}
				}
				if !c.flush(ctx, w, buf) {
					return
				}
			case <-ping.C:
				if !c.flush(ctx, w, []byte(": ping\n\n")) {
					return
				}
			case <-c.done:
				return
			case <-done:
				return
			}
		}
	})
}

// appendEvent appends denial seq as an event; one overwritten before it
// was sent is counted as dropped.
func (c *Console) appendEvent(buf []byte, seq uint64) []byte {
	v, ok := c.ring.get(seq)
	if !ok {
		c.subs.dropped.Add(1)
		return buf
	}
	j, err := json.Marshal(v)
	if err != nil {
		return buf
	}
	buf = append(buf, "data: "...)
	buf = append(buf, j...)
	return append(buf, "\n\n"...)
}

// flush writes b and sends it now, within streamWriteTimeout; false when
// the browser is gone.
func (c *Console) flush(ctx *fasthttp.RequestCtx, w *bufio.Writer, b []byte) bool {
	if len(b) == 0 {
		return true
	}
	_ = ctx.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := w.Write(b); err != nil {
		return false
	}
	return w.Flush() == nil
}
