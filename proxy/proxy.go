package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/console"
	"github.com/scopegate/scopegate/proxy/upstream"
)

// Proxy is the traffic handler: reverse proxy, forward-auth endpoint and
// denial writer. It is safe for concurrent use.
type Proxy struct {
	cfg     Config
	engine  *policy.Engine
	store   Store
	users   UserSyncer // nil: user sync off
	bucket  Buckets
	console *console.Console // nil: no operator page
	log     *slog.Logger
	m       *proxyMetrics
	// adminToken is the SHA-256 of AdminToken (compared in constant time);
	// adminTokenSet reports whether one is required.
	adminToken    [32]byte
	adminTokenSet bool

	authPath   string // AuthPath
	envoyPath  string // AuthPath + "/envoy"
	prefix     string // identity header prefix
	hdrType    string // prefix + "Type", ...
	hdrClient  string
	hdrCKey    string
	hdrUserID  string
	hdrUserSub string
	hdrEmail   string
	hdrScope   string

	upstreams *upstream.Pool // nil: decision-only mode
	tun       tunnelSet

	idPrefix [17]byte // 16 hex chars + '-' : per-process random request-id prefix
	idSeq    atomic.Uint64

	pool           sync.Pool // *reqState
	notLoaded      atomic.Bool
	storeErrLogged atomic.Int64 // unix nanos of the last store-error log line
}

// New validates cfg and builds a Proxy. deps.Engine and deps.Store are
// required.
func New(cfg Config, deps Deps) (*Proxy, error) {
	if deps.Engine == nil {
		return nil, errors.New("proxy: Deps.Engine is nil")
	}
	if deps.Store == nil {
		return nil, errors.New("proxy: Deps.Store is nil")
	}
	cfg.setDefaults()
	if !strings.HasPrefix(cfg.AuthPath, "/") || strings.HasSuffix(cfg.AuthPath, "/") && cfg.AuthPath != "/" {
		return nil, fmt.Errorf("proxy: auth path %q must start with / and not end with /", cfg.AuthPath)
	}
	if cfg.AuthPath == "/" {
		return nil, errors.New("proxy: auth path must not be /")
	}
	p := &Proxy{
		cfg:       cfg,
		engine:    deps.Engine,
		store:     deps.Store,
		users:     deps.UserSync,
		bucket:    deps.Buckets,
		console:   deps.Console,
		log:       cfg.Logger,
		authPath:  cfg.AuthPath,
		envoyPath: cfg.AuthPath + "/envoy",
		prefix:    cfg.IdentityHeaderPrefix,
	}
	// Canonical spelling (as fasthttp normalizes names), so the names can be
	// set without normalizing them on every request.
	if p.bucket == nil {
		p.bucket = localBuckets{deps.Engine}
	}
	pre := canonicalHeaderName(cfg.IdentityHeaderPrefix)
	p.hdrType, p.hdrClient, p.hdrCKey = pre+"Type", pre+"Client-Id", pre+"Client-Key"
	p.hdrUserID, p.hdrUserSub, p.hdrEmail, p.hdrScope = pre+"User-Id", pre+"User-Sub", pre+"User-Email", pre+"Scope"
	if len(cfg.Upstreams) > 0 {
		ups, err := upstream.New(cfg.upstreamConfig())
		if err != nil {
			return nil, err
		}
		p.upstreams = ups
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("proxy: reading random request-id prefix: %w", err)
	}
	hex.Encode(p.idPrefix[:16], rnd[:])
	p.idPrefix[16] = '-'
	if cfg.AdminToken != "" {
		p.adminToken, p.adminTokenSet = sha256.Sum256([]byte(cfg.AdminToken)), true
	}
	p.m = newProxyMetrics(cfg.Metrics)
	p.tun.init(p, cfg.Metrics)
	p.m.routeCountersFor(deps.Engine.Routes())
	p.pool.New = func() any { return &reqState{route: -1} }
	return p, nil
}

// Handler serves the traffic listener: forward-auth under AuthPath, the
// reverse proxy (or decision-only answers) elsewhere. It recovers panics,
// logs them and answers 500 internal_error.
func (p *Proxy) Handler(ctx *fasthttp.RequestCtx) { p.handle(ctx, false, policy.ReasonNone) }

// handle serves one request. envoy set (the gRPC check, [Proxy.CheckEnvoy])
// serves it as an Envoy ext_authz call whatever its target, denied with
// fault (when not ReasonNone) right after the trusted-peer check.
func (p *Proxy) handle(ctx *fasthttp.RequestCtx, envoy bool, fault policy.Reason) {
	p.m.inFlight.Inc()
	st := p.pool.Get().(*reqState)
	defer p.release(st)
	// Counted once the answer is final (after the deferred calls below).
	defer p.countRequest(ctx, st)
	// Every answer, a panic's included, gets its CORS headers last.
	defer p.corsAnswer(ctx, st)
	defer func() {
		if r := recover(); r != nil {
			p.log.LogAttrs(p.cfg.BaseContext, slog.LevelError, "panic serving request",
				slog.String("panic", fmt.Sprint(r)), slog.String("request_id", string(st.reqID)))
			if len(st.reqID) == 0 {
				st.reqID = append(st.reqID, "unknown"...)
			}
			a := denial(&policy.Decision{Reason: policy.ReasonInternal}, false)
			a.restart, a.close = true, true
			p.writeAnswer(ctx, st, a)
		}
	}()
	st.hdr.scan(&ctx.Request.Header, p.cfg.APIKeyHeader)
	p.requestID(ctx, st, st.hdr.requestID)
	p.corsPrepare(st)
	// A request with both Content-Length and Transfer-Encoding is framed by
	// Transfer-Encoding and its connection closed after the answer (fasthttp,
	// RFC 9112 §6.3); Content-Length is dropped, so nothing is smuggled.
	if max := int64(p.cfg.MaxBodyBytes); int64(ctx.Request.Header.ContentLength()) > max {
		p.writeAnswer(ctx, st, malformed(fasthttp.StatusRequestEntityTooLarge, "the request body is too large"))
		return
	}
	// The mode comes from the target up to any '#', so a forward-auth call
	// whose target splitTarget refuses for its '#' still gets the
	// forward-auth answer (403 path_invalid), never the proxy's.
	uri := ctx.Request.Header.RequestURI()
	if envoy {
		st.fault, st.removesHeaders = fault, true
		p.serveForwardAuth(ctx, st, modeEnvoy, uri)
		return
	}
	modeTarget := uri
	if i := bytes.IndexByte(uri, '#'); i >= 0 {
		modeTarget = uri[:i]
	}
	if path, _, ok := splitTarget(modeTarget); ok {
		if mode := p.authMode(path); mode != modeProxy {
			p.serveForwardAuth(ctx, st, mode, uri)
			return
		}
	}
	p.serveProxy(ctx, st)
}

// countRequest counts the answer to a request handle served, by status
// class and the route its decision matched, and ends its in-flight count.
func (p *Proxy) countRequest(ctx *fasthttp.RequestCtx, st *reqState) {
	p.m.countRequest(st.routes, st.route, ctx.Response.StatusCode())
	p.m.inFlight.Dec()
}

func (p *Proxy) release(st *reqState) {
	st.reset()
	p.pool.Put(st)
}

// maxRequestID bounds a kept incoming X-Request-Id.
const maxRequestID = 200

// requestID keeps an incoming X-Request-Id (in) when it is 1–maxRequestID
// printable ASCII characters other than '"' and '\\' (so it is safe, as is,
// in the JSON denial, in nginx's rebuilt one and in logs) or generates one
// from a per-process random prefix and a counter. It does not allocate once
// st's buffer has grown.
func (p *Proxy) requestID(ctx *fasthttp.RequestCtx, st *reqState, in []byte) {
	if validRequestID(in) {
		st.reqID = append(st.reqID[:0], in...)
	} else {
		st.reqID = append(st.reqID[:0], p.idPrefix[:]...)
		st.reqID = fasthttp.AppendUint(st.reqID, int(p.idSeq.Add(1)&(1<<62-1)))
	}
	ctx.Response.Header.SetCanonical(hdrRequestID, st.reqID)
}

func validRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > maxRequestID {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ValidateUpstream reports whether raw is a usable upstream URL: http or
// https, a host, and no path or query (the request's own path and query are
// forwarded unchanged).
func ValidateUpstream(raw string) error { return upstream.Validate(raw) }

// canonicalHeaderName spells name the way fasthttp normalizes header names
// (the first letter and every letter after '-' upper case, the rest lower).
func canonicalHeaderName(name string) string {
	return string(fasthttp.AppendNormalizedHeaderKey(nil, name))
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
