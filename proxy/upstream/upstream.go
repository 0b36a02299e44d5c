// Package upstream is the reverse proxy's upstream side: one keep-alive
// pool per SCOPEGATE_UPSTREAM_URL entry, round-robin over the healthy ones
// with a passive health check, the connections' timeouts and their look at
// each answer's status line (conn.go), the exchange itself (transport.go:
// an answer that came whole is read, any other streamed), the retry of a
// stale keep-alive connection, the request-body limit, and the framing of an
// answer for the client's HTTP version.
//
// It knows nothing of decisions or of the handler: [Pool.Do] sends a
// request that the caller has already rewritten and tells, as an
// [Outcome], what happened; the caller decides what to answer.
package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Config configures a [Pool]. The zero value of each field means its
// documented default.
type Config struct {
	// URLs are the upstreams' base URLs (http or https, a host, no path or
	// query), used round-robin over the healthy ones.
	URLs []string
	// Timeout bounds the wait for an answer's header block from the
	// request's last byte, waiting for a free pooled connection, connecting
	// (at most maxConnectTimeout) and each pause while a body streams either
	// way; not the length of an answer that keeps coming. Default 30s.
	Timeout time.Duration
	// FailTimeout is how long an upstream that failed to connect or answer
	// is skipped. Default 10s.
	FailTimeout time.Duration
	// MaxConns bounds the keep-alive pool per upstream. Default 1024.
	MaxConns int
	// IdleTimeout closes pooled connections idle that long. Default 1s.
	IdleTimeout time.Duration
	// RootCAs, if set, are the certificate authorities an https upstream's
	// certificate must chain to; nil: the system's.
	RootCAs *x509.CertPool
	// Dial, if set, opens connections (tests and benchmarks use in-memory
	// listeners). If nil, TCP is used.
	Dial func(addr string) (net.Conn, error)
	// MaxHeaderBytes bounds an answer's header block. Default 16 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body (a chunked one while it streams)
	// and an answer of unknown length buffered whole for an HTTP/1.0
	// client. Default 10 MiB.
	MaxBodyBytes int
}

func (c *Config) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.FailTimeout <= 0 {
		c.FailTimeout = 10 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 1024
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 10 << 20
	}
}

// Outcome names what became of an exchange with the upstream.
type Outcome uint8

// The outcomes of [Pool.Do].
const (
	// OK: the answer's status and headers are in the response, its body
	// streams (or, for an HTTP/1.0 client, is there whole).
	OK Outcome = iota
	// BodyTooLarge: the client's body went past MaxBodyBytes.
	BodyTooLarge
	// BodyTimedOut: the client did not send its body in time.
	BodyTimedOut
	// BodyMalformed: the client's body could not be read (framing, a
	// connection closed short).
	BodyMalformed
	// Timeout: the upstream did not answer within Timeout.
	Timeout
	// Unavailable: no upstream could be reached, or its answer was broken.
	Unavailable
	// Upgraded: the upstream answered an upgrade handshake 101 with
	// Upgrade: websocket ([Pool.Handshake]); the connection is a tunnel.
	Upgraded
)

var outcomeNames = [...]string{"ok", "body_too_large", "body_timed_out", "body_malformed", "upstream_timeout", "upstream_unavailable", "upgraded"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Pool sends requests to the upstreams. It is safe for concurrent use.
type Pool struct {
	cfg       Config
	upstreams []*upstream
	rr        atomic.Uint64
}

// New validates cfg and builds its pools. No connection is opened.
func New(cfg Config) (*Pool, error) {
	cfg.setDefaults()
	p := &Pool{cfg: cfg}
	for _, raw := range cfg.URLs {
		u, err := newUpstream(raw, &p.cfg)
		if err != nil {
			return nil, err
		}
		p.upstreams = append(p.upstreams, u)
	}
	return p, nil
}

// Timeout returns Config.Timeout (defaults applied): a tunnel's writes to
// the upstream are bounded by it.
func (p *Pool) Timeout() time.Duration { return p.cfg.Timeout }

// Len returns the number of upstreams.
func (p *Pool) Len() int { return len(p.upstreams) }

// HostClient returns the keep-alive client requests for the upstream raw go
// through, with cfg's pool size, idle timeout, dialer and Timeout on every
// read and write of its connections (defaults applied). The benchmark's
// reference proxy uses it to pay for the same client. Its exchange is this
// package's transport, which ignores the client's ReadTimeout,
// WriteTimeout, MaxConnDuration and MaxResponseBodySize: leave them unset.
func HostClient(cfg Config, raw string) (*fasthttp.HostClient, error) {
	cfg.setDefaults()
	u, err := newUpstream(raw, &cfg)
	if err != nil {
		return nil, err
	}
	return u.hc, nil
}

// Validate reports whether raw is a usable upstream URL: http or https, a
// host, and no path or query (the request's own path and query are
// forwarded unchanged).
func Validate(raw string) error {
	_, err := parseURL(raw)
	return err
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("proxy: upstream %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("proxy: upstream %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("proxy: upstream %q: no host", raw)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, fmt.Errorf("proxy: upstream %q: a path or query is not supported (the request path is forwarded unchanged)", raw)
	}
	return u, nil
}

// upstream is one URL with its keep-alive pool and its passive health
// state.
type upstream struct {
	url         string // for logs
	hc          *fasthttp.HostClient
	tls         bool
	failTimeout time.Duration
	downUntil   atomic.Int64 // unix nanos; skipped until then
	open        func(addr string) (net.Conn, error)
}

func newUpstream(raw string, cfg *Config) (*upstream, error) {
	pu, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	isTLS := pu.Scheme == "https"
	addr := pu.Host
	if pu.Port() == "" {
		if isTLS {
			addr = net.JoinHostPort(pu.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(pu.Hostname(), "80")
		}
	}
	u := &upstream{url: pu.Scheme + "://" + pu.Host, tls: isTLS, failTimeout: cfg.FailTimeout}
	u.hc = &fasthttp.HostClient{
		Addr:                addr,
		IsTLS:               isTLS,
		MaxConns:            cfg.MaxConns,
		MaxIdleConnDuration: cfg.IdleTimeout,
		// No ReadTimeout or WriteTimeout: those set one deadline per
		// request, which then also cuts a response body still streaming
		// past it. The connections keep their own deadlines instead
		// (conn), and dials are bounded by Dial.
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
		// Answers stream back unless their body came whole with the header
		// block (transport).
		Transport: transport{},
		// At most one retry, only for an idempotent request without a
		// streamed body whose pooled keep-alive connection turned out to be
		// closed by the upstream: a body stream cannot be replayed, and a
		// non-idempotent request could run twice.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                retryStaleConn,
		MaxConnWaitTimeout:        cfg.Timeout,
	}
	var tlsConfig *tls.Config
	if isTLS {
		tlsConfig = &tls.Config{ServerName: pu.Hostname(), MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
	}
	u.open = opener(cfg, tlsConfig)
	u.hc.Dial = dialer(cfg, u)
	return u, nil
}

// markDown skips u for its FailTimeout (passive health check).
func (u *upstream) markDown() {
	u.downUntil.Store(time.Now().Add(u.failTimeout).UnixNano())
}

// pick returns the next upstream round-robin, skipping those marked down;
// when all are down it tries the next one anyway.
func (p *Pool) pick(now time.Time) *upstream {
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

// Exchange is the per-request state of [Pool.Do]: the caller keeps one per
// request (pooled with its other scratch space) and reads the failure's
// details from it. Reset it before reuse.
type Exchange struct {
	body  limitedBody
	names [][]byte // trailer names to delete (copied into keys)
	keys  []byte
	last  *upstream // tried last

	// Upstream is the URL (scheme://host) of the upstream tried last, for
	// logs; "" when none was.
	Upstream string
	// Err is why the exchange failed (nil on OK). It may quote nothing of
	// the answer: fasthttp's secure messages are used.
	Err error
	// Answered is when the answer's header block arrived or the exchange
	// failed, before any buffering for an HTTP/1.0 client.
	Answered time.Time
}

// Reset clears x for another request, keeping its buffers.
func (x *Exchange) Reset() {
	x.body = limitedBody{}
	x.names, x.keys = x.names[:0], x.keys[:0]
	x.last, x.Upstream, x.Err, x.Answered = nil, "", nil, time.Time{}
}

// Do sends req, already rewritten for the upstream, and reads the answer's
// status and headers into resp; its body streams from there. now is when
// the request was decided (the first pick uses it rather than the clock).
//
// A request body stream is limited to MaxBodyBytes and its trailer section
// dropped. A connection that could not be opened sent nothing, so the
// request goes to the next healthy upstream. An answer of unknown length
// for an HTTP/1.0 client (req.Header.IsHTTP11 false) is read whole, up to
// MaxBodyBytes and within Timeout; an HTTP/1.1 client gets its headers at
// once. resp's protocol is HTTP/1.1 whatever the upstream spoke.
func (p *Pool) Do(x *Exchange, req *fasthttp.Request, resp *fasthttp.Response, now time.Time) Outcome {
	if bs := req.BodyStream(); bs != nil {
		n := req.Header.ContentLength()
		if n < 0 {
			n = -1
		}
		x.body = limitedBody{r: bs, left: int64(p.cfg.MaxBodyBytes), declared: int64(n), x: x, h: &req.Header}
		req.SetBodyStream(&x.body, n)
	}
	err := p.send(x, req, resp, now)
	x.Answered = time.Now()
	if o := x.body.outcome(); err != nil && o != OK {
		x.Err = err
		return o
	}
	if err == nil && resp.StatusCode() == fasthttp.StatusSwitchingProtocols {
		// Impossible while conn's scan reads status lines as fasthttp
		// does (it fails the read of every 101); should one pass, the
		// connection is pooled: drop the idle ones before another
		// request draws it.
		x.last.hc.CloseIdleConnections()
		err = errSwitchedConn
	}
	if err != nil {
		x.Err = err
		return outcomeOf(err)
	}
	return frame(x, &p.cfg, req, resp)
}

// outcomeOf is the outcome of an exchange that failed with err: Timeout
// for a timeout, else Unavailable.
func outcomeOf(err error) Outcome {
	if errors.Is(err, fasthttp.ErrTimeout) || isTimeout(err) {
		return Timeout
	}
	return Unavailable
}

// send tries the upstreams in turn while a connection cannot be opened.
func (p *Pool) send(x *Exchange, req *fasthttp.Request, resp *fasthttp.Response, now time.Time) error {
	noHost := len(req.URI().Host()) == 0
	var err error
	for attempt := 0; attempt < len(p.upstreams); attempt++ {
		if attempt > 0 {
			now = time.Now()
		}
		u := p.pick(now)
		x.last, x.Upstream = u, u.url
		if noHost {
			// HTTP/1.0 without Host: name the upstream. fasthttp writes
			// the parsed URI's host as Host, so that is where it goes.
			req.URI().SetHost(u.hc.Addr)
		}
		u.setScheme(req.URI())
		err = u.hc.Do(req, resp)
		if err == nil || !isDialError(err) || x.body.exceeded {
			return err
		}
		u.markDown()
	}
	return err
}

// setScheme sets uri's scheme to u's (http or https).
func (u *upstream) setScheme(uri *fasthttp.URI) {
	if u.tls {
		uri.SetSchemeBytes(strHTTPS)
	} else {
		uri.SetSchemeBytes(strHTTP)
	}
}

var (
	strHTTP   = []byte("http")
	strHTTPS  = []byte("https")
	strHTTP11 = []byte("HTTP/1.1")
)

// frame sets the answer's framing for the client. The gateway answers in
// HTTP/1.1 whatever version the upstream spoke: an HTTP/1.0 status line
// over the chunked framing the answer may get would be read as a
// close-delimited body.
func frame(x *Exchange, cfg *Config, req *fasthttp.Request, resp *fasthttp.Response) Outcome {
	resp.Header.SetProtocol(strHTTP11)
	if resp.Header.ContentLength() >= 0 {
		return OK
	}
	if req.Header.IsHTTP11() {
		// An answer of unknown length (server-sent events, a long poll):
		// the client gets the status and headers now, not with the first
		// body bytes. A sized one goes out in one write.
		resp.ImmediateHeaderFlush = true
		return OK
	}
	// An HTTP/1.0 client has no chunked framing (RFC 9112 §6.1), and
	// fasthttp has no close-delimited one for a stream: send the answer
	// whole, with its length, up to MaxBodyBytes.
	if resp.BodyStream() == nil {
		// No body (HEAD): no length to give, and no Transfer-Encoding
		// either.
		resp.Header.SetContentLength(-2)
		return OK
	}
	if err := bufferAnswer(resp, cfg); err != nil {
		x.Err = err
		return Unavailable
	}
	return OK
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
	return false, errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF)
}

// isDialError reports whether err happened while opening the connection,
// before anything was sent.
func isDialError(err error) bool {
	var de *fasthttp.ErrDialWithUpstream
	if errors.Is(err, fasthttp.ErrDialTimeout) || errors.As(err, &de) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
