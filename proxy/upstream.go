package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/policy"
)

// upstream is one SCOPEGATE_UPSTREAM_URL entry with its keep-alive pool and
// its passive health state.
type upstream struct {
	url       string // for logs
	hc        *fasthttp.HostClient
	tls       bool
	downUntil atomic.Int64 // unix nanos; skipped until then
}

// UpstreamClient returns the keep-alive client the proxy sends requests for
// the upstream raw (one SCOPEGATE_UPSTREAM_URL entry) through, with c's pool
// size, idle timeout, dialer and UpstreamTimeout on every read and write of
// its connections (defaults applied). The proxy calls its Do and streams the
// response body back; the benchmark's reference proxy uses it to pay for the
// same client.
func (c Config) UpstreamClient(raw string) (*fasthttp.HostClient, error) {
	c.setDefaults()
	u, err := newUpstream(raw, &c)
	if err != nil {
		return nil, err
	}
	return u.hc, nil
}

func newUpstream(raw string, cfg *Config) (*upstream, error) {
	u, err := validateUpstreamURL(raw)
	if err != nil {
		return nil, err
	}
	isTLS := u.Scheme == "https"
	addr := u.Host
	if u.Port() == "" {
		if isTLS {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	hc := &fasthttp.HostClient{
		Addr:                addr,
		IsTLS:               isTLS,
		MaxConns:            cfg.UpstreamMaxConns,
		MaxIdleConnDuration: cfg.UpstreamIdleTimeout,
		// No ReadTimeout or WriteTimeout: those set one deadline per
		// request, which then also cuts a response body still streaming
		// past it. The connections keep their own deadlines instead
		// (upstreamConn), and dials are bounded by Dial.
		// The response header block may be as large as a request's
		// (fasthttp's default is 4 KiB: a long Content-Security-Policy or a
		// few JWT cookies are more).
		ReadBufferSize: cfg.MaxHeaderBytes,
		// Errors about a malformed answer do not quote it (its cookies and
		// tokens would reach the log).
		SecureErrorLogMessage:         true,
		DisablePathNormalizing:        true, // the raw path goes out unchanged (SPEC §5 Paths)
		DisableHeaderNamesNormalizing: true,
		NoDefaultUserAgentHeader:      true,
		StreamResponseBody:            true,
		// At most one retry, only for an idempotent request without a
		// streamed body whose pooled keep-alive connection turned out to be
		// closed by the upstream: a body stream cannot be replayed, and a
		// non-idempotent request could run twice.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                retryStaleConn,
		MaxConnWaitTimeout:        cfg.UpstreamTimeout,
	}
	var tlsConfig *tls.Config
	if isTLS {
		tlsConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, RootCAs: cfg.UpstreamRootCAs}
	}
	hc.Dial = upstreamDialer(cfg, tlsConfig)
	return &upstream{url: u.Scheme + "://" + u.Host, hc: hc, tls: isTLS}, nil
}

// markDown skips u for d (passive health check).
func (u *upstream) markDown(d time.Duration) {
	u.downUntil.Store(time.Now().Add(d).UnixNano())
}

// pick returns the next upstream round-robin, skipping those marked down;
// when all are down it tries the next one anyway.
func (p *Proxy) pick(now time.Time) *upstream {
	n := uint64(len(p.upstreams))
	start := p.rr.Add(1)
	t := now.UnixNano()
	for i := uint64(0); i < n; i++ {
		u := p.upstreams[(start+i)%n]
		if u.downUntil.Load() <= t {
			return u
		}
	}
	return p.upstreams[start%n]
}

// forward sends the authorized request to an upstream and streams the answer
// back. The request is rewritten in place: hop-by-hop headers, incoming
// identity headers and (with StripCredentials) the credential are removed;
// X-Forwarded-For/-Proto/-Host, X-Request-Id and the identity headers set.
// now is when the decision ended: the upstream call is timed from it.
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, st *reqState, d *policy.Decision, peer netip.Addr, trusted bool, now time.Time) {
	req := &ctx.Request
	stripCred := p.cfg.StripCredentials && st.req.Cred.Kind == policy.CredentialAPIKey
	inAuthz := st.req.Cred.InAuthorization
	closeClient := req.Header.ConnectionClose()
	// From here on st.req's strings (which alias request headers) are stale.
	st.req = policy.Request{}
	p.cleanRequestHeaders(&req.Header, st, !trusted)
	if stripCred {
		req.Header.Del(p.cfg.APIKeyHeader)
		req.Header.DelBytes(hdrClientKey)
		if inAuthz {
			req.Header.DelBytes(hdrAuthorization)
		}
	}
	p.setForwarded(ctx, st, peer, trusted)
	req.Header.SetCanonical(hdrRequestID, st.reqID)
	p.setIdentity(&req.Header, st, &d.Identity)
	if closeClient {
		// The client asked to close; Connection was removed from the upstream
		// request (hop-by-hop), so close the client connection ourselves.
		defer ctx.Response.SetConnectionClose()
	}

	if bs := req.BodyStream(); bs != nil {
		// A chunked body has no declared length: enforce MaxBodyBytes while
		// it streams to the upstream. Either kind: tell the client's read
		// errors from the upstream's.
		n := req.Header.ContentLength()
		if n < 0 {
			n = -1
		}
		st.body = limitedBody{r: bs, left: int64(p.cfg.MaxBodyBytes), declared: int64(n), h: &req.Header, st: st}
		req.SetBodyStream(&st.body, n)
	}

	sent := now
	noHost := len(req.URI().Host()) == 0
	var (
		u   *upstream
		err error
	)
	// A connection that could not be opened sent nothing, so the request
	// (body stream included) can go to the next healthy upstream.
	for attempt := 0; attempt < len(p.upstreams); attempt++ {
		if attempt > 0 {
			now = time.Now()
		}
		u = p.pick(now)
		if noHost {
			// HTTP/1.0 without Host: name the upstream. fasthttp writes
			// the parsed URI's host as Host, so that is where it goes.
			req.URI().SetHost(u.hc.Addr)
		}
		if u.tls {
			req.URI().SetSchemeBytes(strHTTPS)
		} else {
			req.URI().SetSchemeBytes(strHTTP)
		}
		err = u.hc.Do(req, &ctx.Response)
		if err == nil || !isDialError(err) || st.body.exceeded {
			break
		}
		u.markDown(p.cfg.UpstreamFailTimeout)
	}
	p.m.upstreamSeconds.UpdateDuration(sent)
	if err != nil && st.body.exceeded {
		restartAnswer(ctx, st)
		p.writeBadRequest(ctx, st, fasthttp.StatusRequestEntityTooLarge, "the request body is too large")
		return
	}
	if err != nil && st.body.readErr != nil {
		// The client's body failed (framing, or not sent within
		// SCOPEGATE_READ_TIMEOUT): the client's fault, not the upstream's.
		restartAnswer(ctx, st)
		if isTimeout(st.body.readErr) {
			p.writeBadRequest(ctx, st, fasthttp.StatusRequestTimeout, "the request body was not sent in time")
		} else {
			p.writeBadRequest(ctx, st, fasthttp.StatusBadRequest, "the request body could not be read")
		}
		return
	}
	if err != nil {
		reason := policy.ReasonUpstreamUnavailable
		if errors.Is(err, fasthttp.ErrTimeout) || isTimeout(err) {
			reason = policy.ReasonUpstreamTimeout
			p.m.upstreamTimeouts.Inc()
		} else {
			p.m.upstreamUnavailable.Inc()
			if marksDown(err, &ctx.Response) {
				u.markDown(p.cfg.UpstreamFailTimeout)
			}
		}
		p.upstreamFailed(ctx, st, u, reason, err)
		return
	}
	if ctx.Response.StatusCode() == fasthttp.StatusSwitchingProtocols {
		// A 101 the connection's scan did not recognise (it fails the
		// read of those it does): fasthttp has pooled the connection, so
		// retire it before another request draws it.
		retireConn(&ctx.Response)
		p.m.upstreamUnavailable.Inc()
		p.upstreamFailed(ctx, st, u, policy.ReasonUpstreamUnavailable, errSwitchedConn)
		return
	}
	// The gateway answers in HTTP/1.1 whatever version the upstream spoke:
	// an HTTP/1.0 status line over the chunked framing the answer may get
	// would be read as a close-delimited body.
	ctx.Response.Header.SetProtocol(strHTTP11)
	if ctx.Response.Header.ContentLength() < 0 {
		if !ctx.Request.Header.IsHTTP11() {
			// An HTTP/1.0 client has no chunked framing (RFC 9112 §6.1),
			// and fasthttp has no close-delimited one for a stream: send
			// the answer whole, with its length, up to MaxBodyBytes.
			if ctx.Response.BodyStream() == nil {
				// No body (HEAD): no length to give, and no
				// Transfer-Encoding either.
				ctx.Response.Header.SetContentLength(-2)
			} else if !p.bufferAnswer(ctx, st, u) {
				return
			}
		} else {
			// An answer of unknown length (server-sent events, a long
			// poll): the client gets the status and headers now, not with
			// the first body bytes. A sized one goes out in one write.
			ctx.Response.ImmediateHeaderFlush = true
		}
	}
	cleanResponseHeaders(&ctx.Response.Header, st, d.RateLimit.Applied)
	ctx.Response.Header.SetCanonical(hdrRequestID, st.reqID)
	p.setRateLimitHeaders(ctx, st, &d.RateLimit, false)
}

// marksDown reports whether err, a failed exchange whose answer (if any)
// is resp, is the upstream's ill health (passive health check), so it is
// skipped for a while. A dial error already did in forward's loop. Not
// for a full pool (load), a failure on a pooled keep-alive connection the
// upstream had closed (a crashed upstream fails the next dial), or an
// answer a request could provoke (headers too large, a 101).
func marksDown(err error, resp *fasthttp.Response) bool {
	return !errors.Is(err, fasthttp.ErrNoFreeConns) && !reusedConn(resp) &&
		!errors.As(err, new(*fasthttp.ErrSmallBuffer)) && !errors.Is(err, errSwitchedConn) &&
		!errors.Is(err, errRetiredConn) && !isDialError(err)
}

// upstreamFailed logs why u failed the request (err without the input
// fasthttp quotes) and answers the denial for reason in place of whatever
// the upstream's answer had begun.
func (p *Proxy) upstreamFailed(ctx *fasthttp.RequestCtx, st *reqState, u *upstream, reason policy.Reason, err error) {
	p.log.LogAttrs(p.cfg.BaseContext, slog.LevelWarn, "upstream request failed",
		slog.String("upstream", u.url), slog.String("err", unquoted(err.Error())),
		slog.String("reason", reason.String()), slog.String("request_id", string(st.reqID)))
	restartAnswer(ctx, st)
	p.writeDenial(ctx, st, policy.Denied(reason), false)
}

// restartAnswer drops what the upstream's answer put in ctx.Response,
// keeping the request id.
func restartAnswer(ctx *fasthttp.RequestCtx, st *reqState) {
	ctx.Response.Reset()
	ctx.Response.Header.SetCanonical(hdrRequestID, st.reqID)
}

var (
	strHTTP   = []byte("http")
	strHTTPS  = []byte("https")
	strHTTP11 = []byte("HTTP/1.1")
)

// bufferAnswer reads the streamed answer of unknown length whole, for an
// HTTP/1.0 client, and sets it as the body with its length. One larger than
// MaxBodyBytes, or not over within UpstreamTimeout (an event stream, a long
// poll: nothing could reach the client before its end), is not sent: 502
// upstream_unavailable, and false.
func (p *Proxy) bufferAnswer(ctx *fasthttp.RequestCtx, st *reqState, u *upstream) bool {
	bs := ctx.Response.BodyStream()
	deadline := time.Now().Add(p.cfg.UpstreamTimeout)
	var (
		body []byte
		err  error
	)
	for {
		if len(body) == cap(body) {
			body = slices.Grow(body, 32<<10)
		}
		var n int
		n, err = bs.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		switch {
		case err == io.EOF:
			err = nil
		case err != nil:
		case len(body) > p.cfg.MaxBodyBytes:
			err = errAnswerTooLarge
		case time.Now().After(deadline):
			err = errAnswerTooSlow
		default:
			continue
		}
		break
	}
	if err != nil {
		if rc, ok := bs.(fasthttp.ReadCloserWithError); ok {
			_ = rc.CloseWithError(err)
		}
		p.m.upstreamUnavailable.Inc()
		p.upstreamFailed(ctx, st, u, policy.ReasonUpstreamUnavailable, err)
		return false
	}
	_ = ctx.Response.CloseBodyStream()
	ctx.Response.SetBody(body)
	return true
}

// retryStaleConn is the HostClient's RetryIfErr: see newUpstream.
func retryStaleConn(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if attempts > 1 || req.IsBodyStream() {
		return false, false
	}
	switch string(req.Header.Method()) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodOptions, fasthttp.MethodPut, fasthttp.MethodDelete:
	default:
		return false, false
	}
	// errRetiredConn is a write refused on a connection retired after a
	// 101 (retireConn): nothing was sent.
	return false, errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) || errors.Is(err, errRetiredConn)
}

// isDialError reports whether err happened while opening the connection,
// before anything was sent.
func isDialError(err error) bool {
	var de *fasthttp.ErrDialWithUpstream
	if errors.As(err, &de) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bufferAnswer's failures.
var (
	errAnswerTooLarge = errors.New("an answer of unknown length over SCOPEGATE_MAX_BODY_BYTES for an HTTP/1.0 client")
	errAnswerTooSlow  = errors.New("an answer of unknown length not over within SCOPEGATE_UPSTREAM_TIMEOUT for an HTTP/1.0 client")
)

// errBodyTooLarge stops a chunked request body past MaxBodyBytes.
var errBodyTooLarge = errors.New("proxy: request body too large")

// limitedBody passes a request body stream through until more than left
// bytes were read (a chunked body declares no length), and keeps the
// client's read error apart from the upstream's. At its end it drops the
// trailer section the client sent: fasthttp reads the trailer only while
// the body streams to the upstream, after the header hygiene ran, and would
// forward it, identity or forwarded fields included. Like nginx, the
// gateway forwards no request trailers.
type limitedBody struct {
	r        io.Reader
	left     int64
	exceeded bool
	readErr  error // the client's body failed: framing, timeout, reset, short
	declared int64 // Content-Length, or -1 (chunked)
	read     int64
	h        *fasthttp.RequestHeader // whose trailer to drop at the end
	st       *reqState               // its name buffers copy the trailer names
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if err == io.EOF && l.declared >= 0 && l.read < l.declared {
		// The client closed before sending what it declared: fasthttp's
		// stream ends it as a plain EOF.
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF {
		l.readErr = err
	}
	if err == io.EOF {
		if keys := l.h.PeekTrailerKeys(); len(keys) > 0 {
			// Copies (deleting moves the fields), in the request's reused
			// name buffers, as the header passes make them.
			st := l.st
			st.names, st.keys = st.names[:0], st.keys[:0]
			for _, k := range keys {
				st.addName(k)
			}
			for _, k := range st.names {
				l.h.DelBytes(k)
			}
			st.names, st.keys = st.names[:0], st.keys[:0]
		}
	}
	l.left -= int64(n)
	if l.left < 0 {
		l.exceeded = true
		return 0, errBodyTooLarge
	}
	return n, err
}
