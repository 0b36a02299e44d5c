package proxy

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/console"
)

// Config configures a [Proxy]. The zero value of each field means its
// documented default; cmd/scopegate fills it from the SCOPEGATE_ variables.
type Config struct {
	// Logger receives the decision log (one JSON line per denial, and per
	// allow with LogAllowed) and errors. If nil, logs are discarded.
	Logger *slog.Logger
	// LogAllowed logs allowed decisions too (SCOPEGATE_LOG_ALLOWED).
	LogAllowed bool

	// AuthPath is the forward-auth endpoint (SCOPEGATE_AUTH_PATH). Default
	// "/_auth". AuthPath + "/envoy" + original path serves Envoy ext_authz.
	// Requests under AuthPath are never proxied.
	AuthPath string
	// IdentityHeaderPrefix names the identity headers
	// (SCOPEGATE_IDENTITY_HEADER_PREFIX). Default "X-Auth-".
	IdentityHeaderPrefix string
	// StripCredentials removes the API key headers (and the Authorization
	// header when it carried the key) from forwarded requests
	// (SCOPEGATE_STRIP_CREDENTIALS, whose default is true). Zero keeps them.
	StripCredentials bool
	// APIKeyHeader is the API key header (SCOPEGATE_API_KEY_HEADER). Default
	// "X-API-Key".
	APIKeyHeader string
	// JWTCookie names the cookie a JWT may come in (SCOPEGATE_JWT_COOKIE).
	// Empty: cookies are not read.
	JWTCookie string

	// Upstreams are the base URLs authorized requests are forwarded to
	// (SCOPEGATE_UPSTREAM_URL, comma-separated there), used round-robin over
	// the healthy ones. Only scheme and host:port are used; the request's raw
	// path and query are forwarded unchanged. Empty: no reverse proxy; an
	// allowed request outside AuthPath is answered 200 with the identity
	// headers (decision-only mode).
	Upstreams []string
	// UpstreamTimeout bounds the wait for the upstream's response header
	// block from the request's last byte (SCOPEGATE_UPSTREAM_TIMEOUT), and
	// also waiting for a free pooled connection, connecting (at most
	// maxConnectTimeout) and each pause while a body streams either way;
	// not the length of a response that keeps coming. Default 30s. Past it
	// before the headers: 504 upstream_timeout. Deadlines are renewed
	// coarsely: it fires at most UpstreamTimeout/16 late, never early.
	UpstreamTimeout time.Duration
	// UpstreamFailTimeout is how long an upstream that failed to connect or
	// answer is skipped (passive health check). Default 10s.
	UpstreamFailTimeout time.Duration
	// UpstreamMaxConns bounds the keep-alive pool per upstream. Default 1024.
	UpstreamMaxConns int
	// UpstreamIdleTimeout closes pooled upstream connections idle that long
	// (SCOPEGATE_UPSTREAM_IDLE_TIMEOUT). It must stay below the upstream's
	// own keep-alive timeout, or a request can go out on a connection the
	// upstream has just closed; one with a body is not retried (its body
	// streams and cannot be replayed) and fails 502. Default 1s, below
	// common upstream keep-alive timeouts (gunicorn's gthread worker: 2s;
	// Node.js, uvicorn, Apache: 5s).
	UpstreamIdleTimeout time.Duration
	// UpstreamRootCAs, if set, are the certificate authorities an https
	// upstream's certificate must chain to; nil: the system's.
	UpstreamRootCAs *x509.CertPool
	// UpstreamDial, if set, opens upstream connections (tests and
	// benchmarks use in-memory listeners). If nil, TCP is used.
	UpstreamDial func(addr string) (net.Conn, error)

	// TunnelIdleTimeout closes an upgrade tunnel without a byte either way
	// for that long (SCOPEGATE_TUNNEL_IDLE_TIMEOUT). Default 1h.
	TunnelIdleTimeout time.Duration
	// MaxTunnels bounds the upgrade tunnels open at once
	// (SCOPEGATE_MAX_TUNNELS); beyond it a handshake is answered 503
	// too_many_tunnels. Default 10000.
	MaxTunnels int

	// BaseContext is passed to store lookups (never the RequestCtx, which
	// has no deadline). The store bounds a cache miss on its own. If nil,
	// context.Background is used.
	BaseContext context.Context

	// Listener limits, applied by [Proxy.NewServer].

	// MaxHeaderBytes bounds the request line plus headers
	// (SCOPEGATE_MAX_HEADER_BYTES). Default 16 KiB. Larger: 431.
	MaxHeaderBytes int
	// MaxBodyBytes bounds request bodies (SCOPEGATE_MAX_BODY_BYTES). Default
	// 10 MiB. Larger: 413. Bodies are streamed to the upstream, not buffered.
	MaxBodyBytes int
	// ReadTimeout, WriteTimeout and IdleTimeout are the client connection
	// timeouts. Defaults 30s, 60s, 90s. Served through [Proxy.Listener],
	// they fire at most a sixteenth of the shortest of the three late.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// MaxConns bounds concurrent client connections (SCOPEGATE_MAX_CONNS).
	// Default 10000.
	MaxConns int

	// Metrics is the set the proxy registers its metrics in. If nil, a new
	// set is created. ExtraMetrics (for example the store's cache and
	// change-feed metrics) are written on /metrics too.
	Metrics      *metrics.Set
	ExtraMetrics []*metrics.Set

	// AdminToken, when set (SCOPEGATE_ADMIN_TOKEN), is required as
	// "Authorization: Bearer <token>" on every admin path but /healthz and
	// /readyz.
	AdminToken string
}

// ClientLookup finds compiled API clients; store.Store satisfies it.
type ClientLookup interface {
	LookupClient(clientKey string, now time.Time) (*policy.Client, error)
}

// UserLookup finds compiled users; store.Store satisfies it.
type UserLookup interface {
	LookupUser(ctx context.Context, sub string, now time.Time) (*policy.User, error)
}

// DirectorySource gives the current modules, companies and sites;
// store.Store satisfies it.
type DirectorySource interface {
	Directory(now time.Time) (*policy.Directory, error)
}

// UsageRecorder records API client uses for last_used_at; store.Store
// satisfies it.
type UsageRecorder interface {
	MarkUsed(clientID string, at time.Time)
}

// OriginSource gives the allowed_origins of the active clients, for a
// routes file whose cors: block says allow_origins: clients; store.Store
// satisfies it.
type OriginSource interface {
	ClientOrigins() *policy.ClientOrigins
}

// Store is everything the handler needs from a credential store. It is the
// request-path subset of store.Store.
type Store interface {
	ClientLookup
	UserLookup
	DirectorySource
	UsageRecorder
	OriginSource
	// Ready reports whether the store is reachable or serving from a warm
	// cache within the stale TTL (/readyz).
	Ready(now time.Time) bool
}

// UserSyncer creates and refreshes users from verified token claims (SPEC
// §14); *store.Postgres satisfies it. SyncUser gets what LookupUser answered
// for the token's subject and returns the user to decide with (nil:
// unknown).
type UserSyncer interface {
	SyncUser(ctx context.Context, u *policy.User, c policy.Claims, now time.Time) (*policy.User, error)
}

// Deps are the collaborators of a [Proxy].
type Deps struct {
	Engine *policy.Engine
	Store  Store
	// UserSync is nil unless user sync is on (SCOPEGATE_USER_SYNC=claims).
	UserSync UserSyncer
	// Console, if set, receives every decision and serves the operator
	// page and its API on the admin listener (SPEC §13).
	Console *console.Console
	// Buckets takes the token of a rate-limited API key (SPEC §3, §9). If
	// nil, the engine's own per-process buckets ([policy.Engine.TakeLocal]).
	Buckets Buckets
}

// Buckets takes one token at now from client id's bucket of capacity perMin,
// refilled at perMin/60 per second: the engine's per-process buckets or a
// shared store (store.RedisBuckets). It answers even when a shared store
// cannot (its fallback), and never blocks longer than its own timeout.
type Buckets interface {
	Take(id string, perMin int, now time.Time) policy.BucketAnswer
}

// localBuckets adapts the engine's per-process buckets to [Buckets].
type localBuckets struct{ e *policy.Engine }

func (l localBuckets) Take(id string, perMin int, now time.Time) policy.BucketAnswer {
	return l.e.TakeLocal(id, perMin, now)
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AuthPath == "" {
		c.AuthPath = "/_auth"
	}
	if c.IdentityHeaderPrefix == "" {
		c.IdentityHeaderPrefix = "X-Auth-"
	}
	if c.APIKeyHeader == "" {
		c.APIKeyHeader = "X-API-Key"
	}
	// The Upstream* defaults are the upstream package's (upstream.Config).
	if c.TunnelIdleTimeout <= 0 {
		c.TunnelIdleTimeout = time.Hour
	}
	if c.MaxTunnels <= 0 {
		c.MaxTunnels = 10000
	}
	if c.BaseContext == nil {
		c.BaseContext = context.Background()
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 10 << 20
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 60 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 90 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 10000
	}
	if c.Metrics == nil {
		c.Metrics = metrics.NewSet()
	}
}
