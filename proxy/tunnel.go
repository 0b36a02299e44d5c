package proxy

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/upstream"
)

// Upgrade tunnels (SPEC §10): a WebSocket handshake, authorized like any
// request, goes to the upstream over a connection of its own
// (upstream.Pool.Handshake). Only its 101 with Upgrade: websocket turns the
// client connection (hijacked) and that one into a byte tunnel; any other
// answer is relayed as an ordinary response. The client's bytes after the
// handshake stay in fasthttp's reader until the 101 has come, then go
// first, in order. An open tunnel is re-decided, without its token bucket,
// whenever the store applies a change (ChangeNotifier) and when its JWT
// expires, and closed when the decision would now be a denial.

// upgradeKind classifies a request's Connection/Upgrade headers.
type upgradeKind uint8

const (
	upgradeNone      upgradeKind = iota // no upgrade asked, or another protocol (h2c): forwarded as plain HTTP
	upgradeWebSocket                    // a valid WebSocket handshake
	upgradeInvalid                      // a WebSocket handshake that is not valid
)

var (
	hdrUpgrade       = []byte("Upgrade")
	hdrConnection    = []byte("Connection")
	hdrWSKey         = []byte("Sec-WebSocket-Key")
	hdrWSVersion     = []byte("Sec-WebSocket-Version")
	valWebSocket     = []byte("websocket")
	valUpgrade       = []byte("Upgrade")
	valWSVersion     = []byte("13")
	wsSwitchLine     = []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	wsAnswerPrefix   = []byte("Sec-Websocket-")
	errTunnelInvalid = "the WebSocket handshake is not valid (it takes GET over HTTP/1.1, Sec-WebSocket-Key and Sec-WebSocket-Version: 13)"
)

// upgradeOf reads h's upgrade request. Upgrade: websocket with an upgrade
// token in Connection is a WebSocket handshake, valid with GET, HTTP/1.1,
// a Sec-WebSocket-Key and Sec-WebSocket-Version: 13 (RFC 6455 §4.1).
func upgradeOf(h *fasthttp.RequestHeader) upgradeKind {
	if !hasToken(h.PeekBytes(hdrConnection), "upgrade") {
		return upgradeNone
	}
	if !bytes.EqualFold(bytes.TrimSpace(h.PeekBytes(hdrUpgrade)), valWebSocket) {
		return upgradeNone
	}
	if !h.IsGet() || !h.IsHTTP11() || len(h.PeekBytes(hdrWSKey)) == 0 ||
		!bytes.Equal(bytes.TrimSpace(h.PeekBytes(hdrWSVersion)), valWSVersion) {
		return upgradeInvalid
	}
	return upgradeWebSocket
}

// hasToken reports whether the comma-separated list v holds tok (any
// case).
func hasToken(v []byte, tok string) bool {
	for t := range listItems(v) {
		if equalFoldASCII(t, tok) {
			return true
		}
	}
	return false
}

// Why a tunnel closed (scopegate_tunnels_closed_total{reason}).
const (
	closedClient   = "client_closed"   // the client closed or reset
	closedUpstream = "upstream_closed" // the upstream closed or reset
	closedIdle     = "idle"            // no byte either way for TunnelIdleTimeout
	closedStalled  = "stalled"         // a side stopped reading: a write timed out
	closedRevoked  = "revoked"         // the decision would now be a denial
	closedShutdown = "shutdown"
)

var closedReasons = [...]string{closedClient, closedUpstream, closedIdle, closedStalled, closedRevoked, closedShutdown}

// tunnelSet holds the open tunnels, the cap's count and the watcher that
// re-checks them on store changes.
type tunnelSet struct {
	mu       sync.Mutex
	open     map[*tunnel]struct{}
	n        atomic.Int64 // reserved slots: handshakes under way plus open tunnels
	kick     chan struct{}
	stop     chan struct{}
	watching bool
	shutdown bool
	closed   map[string]*metrics.Counter
}

func (s *tunnelSet) init(p *Proxy, set *metrics.Set) {
	s.open = map[*tunnel]struct{}{}
	s.kick = make(chan struct{}, 1)
	s.stop = make(chan struct{})
	s.closed = map[string]*metrics.Counter{}
	for _, r := range closedReasons {
		s.closed[r] = set.GetOrCreateCounter(`scopegate_tunnels_closed_total{reason="` + r + `"}`)
	}
	set.GetOrCreateGauge(`scopegate_tunnels_open`, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.open))
	})
	if n, ok := p.store.(ChangeNotifier); ok {
		n.OnChange(s.changed)
	}
}

// ChangeNotifier is the store's change hook (store.Postgres and store.File
// have it): fn runs after every change the store applies.
type ChangeNotifier interface {
	OnChange(fn func())
}

// changed wakes the watcher; it never blocks the store.
func (s *tunnelSet) changed() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// reserve takes a slot under max; false when the cap (or shutdown) says no.
func (s *tunnelSet) reserve(max int) bool {
	if s.n.Add(1) > int64(max) {
		s.n.Add(-1)
		return false
	}
	s.mu.Lock()
	down := s.shutdown
	s.mu.Unlock()
	if down {
		s.n.Add(-1)
		return false
	}
	return true
}

func (s *tunnelSet) release() { s.n.Add(-1) }

// tunnel is one open upgrade tunnel.
type tunnel struct {
	p        *Proxy
	reqID    string
	up       net.Conn
	head     []byte // the 101 for the client, then the upstream's bytes read with it
	last     atomic.Int64
	deadline time.Time // the key's expires_at, the JWT's exp plus leeway; zero: none
	timer    *time.Timer

	mu     sync.Mutex // guards req (re-checks), client, reason
	req    fasthttp.Request
	remote net.Addr
	client net.Conn
	reason string
	closed atomic.Bool
	opened time.Time
}

// openTunnel forwards an allowed WebSocket handshake and, on the
// upstream's 101, hijacks the client connection into a tunnel.
func (p *Proxy) openTunnel(ctx *fasthttp.RequestCtx, st *reqState, d *policy.Decision, peer netip.Addr, trusted bool, decided time.Time) {
	if !p.tun.reserve(p.cfg.MaxTunnels) {
		p.writeAnswer(ctx, st, denial(&policy.Decision{Reason: policy.ReasonTooManyTunnels}, false))
		return
	}
	t := &tunnel{p: p, reqID: string(st.reqID), remote: ctx.RemoteAddr(), deadline: st.credDeadline}
	ctx.Request.Header.CopyTo(&t.req.Header) // as received, for re-checks
	p.rewriteRequest(ctx, st, d, peer, trusted)
	h := &ctx.Request.Header
	h.SetCanonical(hdrConnection, valUpgrade)
	h.SetCanonical(hdrUpgrade, valWebSocket)
	tun, o := p.upstreams.Handshake(&st.up, &ctx.Request, &ctx.Response, decided)
	p.m.upstreamSeconds.Update(st.up.Answered.Sub(decided).Seconds())
	switch o {
	case upstream.Upgraded:
	case upstream.OK:
		p.tun.release()
		p.passAnswer(ctx, st, d)
		return
	default:
		p.tun.release()
		p.upstreamFailed(ctx, st, o)
		return
	}
	t.up = tun.Conn
	t.head = switchHead(&ctx.Response.Header, st.reqID, tun.Buffered)
	t.opened = time.Now()
	t.touch()
	p.tun.add(p, t)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(t.run)
}

// switchHead is the 101 for the client: the upstream's Sec-WebSocket-*
// fields (Accept, Protocol, Extensions) and nothing else of its header
// block (its hop-by-hop fields above all), X-Request-Id, then the bytes the
// upstream sent after its 101.
func switchHead(h *fasthttp.ResponseHeader, reqID []byte, buffered []byte) []byte {
	b := append([]byte(nil), wsSwitchLine...)
	for k, v := range h.All() {
		if len(k) > len(wsAnswerPrefix) && bytes.EqualFold(k[:len(wsAnswerPrefix)], wsAnswerPrefix) {
			b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
		}
	}
	b = append(append(append(b, hdrRequestID...), ": "...), reqID...)
	b = append(b, "\r\n\r\n"...)
	return append(b, buffered...)
}

// add registers t and starts the watcher with the first tunnel, and t's
// expiry timer (its credential's deadline: nothing in the store changes
// when that passes).
func (s *tunnelSet) add(p *Proxy, t *tunnel) {
	s.mu.Lock()
	s.open[t] = struct{}{}
	start := !s.watching
	s.watching = true
	s.mu.Unlock()
	if start {
		go p.watchTunnels()
	}
	if !t.deadline.IsZero() {
		t.timer = time.AfterFunc(time.Until(t.deadline)+time.Millisecond, func() { p.recheck(t, time.Now()) })
	}
}

// watchTunnels re-checks every open tunnel after each store change.
func (p *Proxy) watchTunnels() {
	for {
		select {
		case <-p.tun.stop:
			return
		case <-p.tun.kick:
		}
		now := time.Now()
		for _, t := range p.tun.list() {
			p.recheck(t, now)
		}
	}
}

func (s *tunnelSet) list() []*tunnel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*tunnel, 0, len(s.open))
	for t := range s.open {
		out = append(out, t)
	}
	return out
}

// recheck decides t's handshake again, as of now and without its token
// bucket, and closes t when that is a denial.
func (p *Proxy) recheck(t *tunnel, now time.Time) {
	st := p.pool.Get().(*reqState)
	defer p.release(st)
	ctx := &fasthttp.RequestCtx{}
	t.mu.Lock()
	ctx.Init(&t.req, t.remote, nil)
	t.mu.Unlock()
	st.hdr.scan(&ctx.Request.Header, p.cfg.APIKeyHeader)
	d, _, _ := p.proxyDecision(ctx, st, now, true)
	if d.Allowed() {
		return
	}
	if t.close(closedRevoked) {
		p.log.LogAttrs(p.cfg.BaseContext, slog.LevelInfo, "tunnel closed",
			slog.String("reason", closedRevoked), slog.String("denial", d.Reason.String()),
			slog.String("request_id", t.reqID), slog.Duration("open", time.Since(t.opened)))
	}
}

// CloseTunnels closes every open tunnel (reason shutdown) and refuses new
// ones: serve calls it once the HTTP listener has drained.
func (p *Proxy) CloseTunnels() {
	p.tun.mu.Lock()
	if !p.tun.shutdown {
		p.tun.shutdown = true
		close(p.tun.stop)
	}
	p.tun.mu.Unlock()
	for _, t := range p.tun.list() {
		t.close(closedShutdown)
	}
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// close ends t once, for reason: both connections are closed, so both
// pumps end. It reports whether this call closed it.
func (t *tunnel) close(reason string) bool {
	t.mu.Lock()
	if t.reason != "" {
		t.mu.Unlock()
		return false
	}
	t.reason = reason
	t.closed.Store(true)
	// fasthttp closes a hijacked connection when the handler (run)
	// returns, and its Close is a no-op: a past deadline ends the client
	// pump's read instead. Under t.mu: once run has returned, fasthttp
	// recycles the connection's wrapper, and run clears t.client first.
	if t.client != nil {
		_ = t.client.SetDeadline(aLongTimeAgo)
	}
	t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
	_ = t.up.Close()
	s := &t.p.tun
	s.mu.Lock()
	delete(s.open, t)
	s.mu.Unlock()
	s.release()
	s.closed[reason].Inc()
	return true
}

// run is the hijack handler: the 101 (and what the upstream sent after
// it) goes to the client, then bytes flow both ways until one side closes,
// stalls or idles. The client's bytes already read by fasthttp come first
// from c.
func (t *tunnel) run(c net.Conn) {
	t.mu.Lock()
	closed := t.reason != ""
	if !closed {
		t.client = c
	}
	t.mu.Unlock()
	if closed {
		return // closed before the hijack ran
	}
	defer func() {
		t.mu.Lock()
		t.client = nil // c is fasthttp's again once run returns
		t.mu.Unlock()
	}()
	p := t.p
	_ = c.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	if _, err := c.Write(t.head); err != nil {
		t.close(closedClient)
		return
	}
	t.head = nil
	// run returns (and fasthttp closes and reuses c) only once both
	// pumps are done with c.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.pump(c, t.up, closedUpstream, closedClient, p.cfg.WriteTimeout)
	}()
	t.pump(t.up, c, closedClient, closedUpstream, p.upstreams.Timeout())
	wg.Wait()
}

var aLongTimeAgo = time.Unix(1, 0)

// pump copies src to dst until either fails: srcGone names src closing,
// dstGone dst; a read past the idle timeout with no byte either way is
// idle, a write past writeTimeout a stall. Bytes go through a 64 KiB
// buffer: splice(2) between the sockets was tried and measured no faster
// on loopback (see bench/RESULTS.md, session 6).
func (t *tunnel) pump(dst, src net.Conn, srcGone, dstGone string, writeTimeout time.Duration) {
	idle := t.p.cfg.TunnelIdleTimeout
	bp := tunnelBufs.Get().(*[]byte)
	defer tunnelBufs.Put(bp)
	buf := *bp
	for {
		_ = src.SetReadDeadline(time.Now().Add(idle))
		if t.closed.Load() {
			// close may have set its past deadline just before the
			// line above replaced it: the read would then wait an idle
			// timeout on a tunnel already closed.
			return
		}
		n, err := src.Read(buf)
		if n > 0 {
			t.touch()
			_ = dst.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				if t.closed.Load() {
					return
				}
				if isTimeout(werr) {
					t.close(closedStalled)
				} else {
					t.close(dstGone)
				}
				return
			}
		}
		if err == nil {
			continue
		}
		if t.closed.Load() {
			return
		}
		if isTimeout(err) {
			if time.Since(time.Unix(0, t.last.Load())) < idle {
				continue // the other direction is busy
			}
			t.close(closedIdle)
			return
		}
		t.close(srcGone) // EOF, a reset, or closed by close
		return
	}
}

var tunnelBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// passAnswer finishes an upstream's answer for the client: the response
// header hygiene, X-Request-Id and the RateLimit headers.
func (p *Proxy) passAnswer(ctx *fasthttp.RequestCtx, st *reqState, d *policy.Decision) {
	cleanResponseHeaders(&ctx.Response.Header, st, d.RateLimit.Applied)
	ctx.Response.Header.SetCanonical(hdrRequestID, st.reqID)
	p.setRateLimitHeaders(ctx, st, &d.RateLimit, false)
}
