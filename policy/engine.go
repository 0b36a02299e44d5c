package policy

import (
	"errors"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
)

// ValueSource gives the engine the request headers and query parameters a
// route's scope may read (scope: site:header:NAME, company:query:NAME).
// Each method returns the first value (query values decoded) and how many
// times the name occurs; a scope named more than once is ambiguous and
// denied (the upstream might read another copy than the one authorized).
type ValueSource interface {
	Header(name string) (value string, count int)
	Query(name string) (value string, count int)
}

// Request is one request as the HTTP side saw it. Its strings may alias
// buffers valid only until the engine call returns; policy never retains them.
type Request struct {
	Method   string
	RawPath  string // the path part of the request target as received, or of the forwarded URI; no query
	Origin   string // Origin header, "" when absent
	ClientIP netip.Addr
	Now      time.Time
	Cred     Credential
	Values   ValueSource // may be nil when no route reads headers or query
	// Forwarded is the Reason [Engine.ClientIP] returned (ReasonNone when
	// the forwarded headers were fine or not read). [Engine.Match] denies
	// with it right after raw path screening, the order of SPEC §4.
	Forwarded Reason
	// OriginRepeated: Origin came in more than one line. A browser sends
	// one; with two, the check and the upstream may read different ones,
	// so [Engine.Match] denies origin_not_allowed, on every route.
	OriginRepeated bool
	// Scratch, when its capacity is at least len(RawPath), receives the
	// percent-decoded path of a path with escapes, so decoding does not
	// allocate; [Match.Path] then aliases it until Scratch is reused.
	Scratch []byte
	// Recheck asks whether an open upgrade tunnel's decision still holds
	// (SPEC §10): every check runs except the token bucket, which a
	// re-check must neither consume nor be refused by.
	Recheck bool
	// Routes is set by [Engine.Match] and [Engine.Preflight]: the routes
	// file a decision's Route indexes. A reload may swap the engine's
	// routes while the request is served; labels and logs read this one.
	Routes *Routes
}

// Match is the request-level result of [Engine.Match]: the matched route and
// the decoded path and placeholder values. Its zero value is "not matched".
type Match struct {
	Route int // index of the route, -1 with no routes file or no matching route
	// Public reports an auth: none route: no credential needed, none checked.
	Public bool
	Path   string // the percent-decoded path the rules matched

	routes *Routes // the routes the match was made against (nil: no file)
	rule   *route  // the matched rule, nil when none
	caps   captures
}

// EngineConfig configures an [Engine].
type EngineConfig struct {
	Routes                 *Routes // nil: no routes file (every request needs a valid credential)
	DefaultRateLimitPerMin int     // for clients whose rate_limit_per_min is NULL; 0 = unlimited
	JWT                    JWTConfig
	TrustedProxies         []netip.Prefix
	// HashCacheTTL is how long a secret that passed a bcrypt or Argon2id
	// check is remembered by its client. Default 5m; a changed client is
	// a new *Client and forgets at once.
	HashCacheTTL time.Duration
	// SlowHashConcurrency bounds the bcrypt and Argon2id verifications
	// running at once (outcomes not yet remembered). Default: half of
	// GOMAXPROCS, at least 1, so guesses can never take every core. One
	// client holds at most half of these slots (at least 1), and a freed
	// slot goes to the clients with requests waiting in turn.
	SlowHashConcurrency int
	// Trace, when set, receives every step of every decision with its
	// outcome (`scopegate explain`). Leave it nil when serving: each engine
	// call then costs one nil check and nothing is described.
	Trace Tracer
	// SlowHashQueue bounds the requests of one client waiting for a slot;
	// SlowHashWait bounds how long one waits. A request past either bound
	// is denied 429 rate_limited without a verification, so a flood of
	// guesses against one client_key is refused rather than queued ahead
	// of other clients. Defaults 16 and 1s.
	SlowHashQueue int
	SlowHashWait  time.Duration
}

// Engine decides. It is safe for concurrent use. Its token buckets and
// verified-token cache live as long as the Engine; routes can be swapped with
// [Engine.SetRoutes] without losing them. The owner should call
// [Engine.SweepRateLimits] periodically (say every minute) so buckets of
// clients that went quiet are freed; the JWT cache bounds itself.
type Engine struct {
	cfg     EngineConfig
	routes  atomic.Pointer[Routes]
	trusted []netip.Prefix
	buckets bucketTable
	jwt     *jwtVerifier
	slow    *slowHashGate
	trace   Tracer // nil when serving
}

// NewEngine builds an Engine. It fails on a negative rate limit or an
// unusable JWT configuration (see [JWTConfig]).
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.DefaultRateLimitPerMin < 0 {
		return nil, errors.New("policy: negative default rate limit")
	}
	if cfg.HashCacheTTL <= 0 {
		cfg.HashCacheTTL = 5 * time.Minute
	}
	if cfg.SlowHashConcurrency <= 0 {
		cfg.SlowHashConcurrency = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.SlowHashQueue <= 0 {
		cfg.SlowHashQueue = defaultSlowHashQueue
	}
	if cfg.SlowHashWait <= 0 {
		cfg.SlowHashWait = defaultSlowHashWait
	}
	e := &Engine{cfg: cfg, slow: newSlowHashGate(cfg.SlowHashConcurrency, cfg.SlowHashQueue, cfg.SlowHashWait), trace: cfg.Trace}
	for _, p := range cfg.TrustedProxies {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		e.trusted = append(e.trusted, p.Masked())
	}
	v, err := newJWTVerifier(cfg.JWT)
	if err != nil {
		return nil, err
	}
	e.jwt = v
	e.routes.Store(cfg.Routes)
	return e, nil
}

// SetRoutes swaps the routes atomically (reload). nil removes the routes file.
func (e *Engine) SetRoutes(r *Routes) { e.routes.Store(r) }

// Routes returns the routes in use, nil when there is no routes file.
func (e *Engine) Routes() *Routes { return e.routes.Load() }

// deny builds a denial on route.
func deny(r Reason, route int) Decision { return Decision{Verdict: Deny, Reason: r, Route: route} }

// Match runs the request-level steps of SPEC §4's order: raw path screening
// (path_invalid), the forwarded-header verdict of req.Forwarded, a repeated
// Origin (origin_not_allowed, req.OriginRepeated), route match
// (no_route), and whether the route accepts the credential kind
// (credentials_missing, credential_not_accepted). A Decision with a Reason
// denies; a public route (auth: none) returns an allowing Decision and
// m.Public; otherwise the Decision has no Reason and the caller resolves the
// credential and calls AuthorizeClient or AuthorizeUser with the Match.
// It does not allocate when the path has no escapes or req.Scratch is large
// enough.
func (e *Engine) Match(req *Request) (Match, Decision) {
	m, d := e.match(req)
	if e.trace != nil {
		e.traceMatch(req, &m, d)
	}
	return m, d
}

func (e *Engine) match(req *Request) (Match, Decision) {
	m, d := e.matchRoute(req, e.routes.Load())
	if d.Reason != ReasonNone || m.Public {
		return m, d
	}
	accept := acceptAll
	if m.rule != nil {
		accept = m.rule.accept
	}
	return m, needCredential(req, accept, m.Route)
}

// matchRoute runs the steps of [Engine.Match] before the credential check
// against rs: raw path screening, the forwarded-header verdict, route match.
// A Decision with a Reason denies; a public route allows with m.Public set;
// otherwise the Decision is empty and m.rule is the matched route (nil with
// no routes file or under default: authenticated).
func (e *Engine) matchRoute(req *Request, rs *Routes) (Match, Decision) {
	req.Routes = rs
	m := Match{Route: -1}
	d := screenPath(req.RawPath)
	if d&pathBad != 0 {
		return m, deny(ReasonPathInvalid, -1)
	}
	if req.Forwarded != ReasonNone {
		return m, deny(req.Forwarded, -1)
	}
	if req.OriginRepeated {
		return m, deny(ReasonOriginNotAllowed, -1)
	}
	encSlash := d&pathEncodedSlash != 0
	path := req.RawPath
	if d&pathEscaped != 0 {
		var ok bool
		if path, ok = decodePath(req.RawPath, encSlash, req.Scratch); !ok {
			return m, deny(ReasonPathInvalid, -1)
		}
	}
	m.Path = path
	m.routes = rs
	if rs == nil {
		if encSlash {
			return m, deny(ReasonPathInvalid, -1)
		}
		return m, Decision{Route: -1}
	}
	if i := rs.index.first(req.Method, path, &m.caps); i >= 0 {
		m.Route, m.rule = i, &rs.rules[i]
	}
	if m.rule == nil {
		if encSlash {
			return m, deny(ReasonPathInvalid, -1)
		}
		if !rs.defaultAuthenticated {
			return m, deny(ReasonNoRoute, -1)
		}
		return m, Decision{Route: -1}
	}
	if encSlash && !m.rule.allowEncodedSlash {
		return m, deny(ReasonPathInvalid, m.Route)
	}
	if m.rule.public {
		m.Public = true
		return m, Decision{Verdict: Allow, Route: m.Route}
	}
	return m, Decision{Route: m.Route}
}

// needCredential checks that a credential is present and of a kind the route
// accepts.
func needCredential(req *Request, accept acceptMask, route int) Decision {
	switch req.Cred.Kind {
	case CredentialAPIKey:
		if accept&acceptAPIKey == 0 {
			return deny(ReasonCredentialNotAccepted, route)
		}
	case CredentialJWT:
		if accept&acceptJWT == 0 {
			return deny(ReasonCredentialNotAccepted, route)
		}
	default:
		return deny(ReasonCredentialsMissing, route)
	}
	return Decision{Route: route}
}

// AuthorizeClient runs the API-key checks 2–8 of SPEC §3 for a client the
// store looked up by req.Cred.ClientKey (nil: unknown client_key): the checks
// of [Engine.CheckClient], then a token from the engine's own per-process
// bucket ([Engine.TakeLocal], [Engine.FinishClient]). A gateway with a shared bucket
// (SPEC §9) calls those three itself.
// It does not allocate for a SHA-256 hash or a cached slow-hash token.
func (e *Engine) AuthorizeClient(req *Request, m *Match, c *Client) Decision {
	d, limit := e.CheckClient(req, m, c)
	if limit > 0 {
		d = e.FinishClient(req, m, c, d, limit, e.TakeLocal(c.ID, limit, req.Now))
	}
	return d
}

// CheckClient runs the API-key checks 2–7 of SPEC §3, including the hash
// check, in this order: api_key_invalid, api_key_inactive, api_key_expired
// (expires_at ≤ now), ip_not_allowed, origin_not_allowed, path_not_allowed
// (over m.Path and req.Method). On a route with a module the key is still
// authorized by its own allowed_paths only. limit is the client's per-minute
// limit (its own, else the default) when d allows and the client is rate
// limited: then d still needs a token from the bucket of c.ID, and the
// bucket's answer goes through [Engine.FinishClient]. Denials consume no
// token. A bcrypt or Argon2id check that gets no hashing slot within
// [EngineConfig.SlowHashQueue] and SlowHashWait is 429 rate_limited, ahead
// of every other check and without RateLimit state.
// It does not allocate for a SHA-256 hash or a cached slow-hash token.
func (e *Engine) CheckClient(req *Request, m *Match, c *Client) (d Decision, limit int) {
	d, limit = e.checkClient(req, m, c)
	if e.trace != nil && limit == 0 {
		e.traceClient(req, m, c, d)
	}
	return d, limit
}

// FinishClient completes d, the allowing decision for which
// [Engine.CheckClient] returned limit > 0, with the answer a of client c's
// bucket ([ApplyBucket]).
func (e *Engine) FinishClient(req *Request, m *Match, c *Client, d Decision, limit int, a BucketAnswer) Decision {
	d = ApplyBucket(d, limit, a)
	if e.trace != nil {
		e.traceClient(req, m, c, d)
	}
	return d
}

func (e *Engine) checkClient(req *Request, m *Match, c *Client) (d Decision, limit int) {
	route := m.Route
	cred := &req.Cred
	if cred.Kind != CredentialAPIKey || cred.Malformed || c == nil || c.ClientKey != cred.ClientKey {
		return deny(ReasonAPIKeyInvalid, route), 0
	}
	switch c.checkSecret(cred.Secret, req.Now, e.cfg.HashCacheTTL, e.slow) {
	case secretWrong:
		return deny(ReasonAPIKeyInvalid, route), 0
	case secretBusy:
		// No hashing slot within the bounds of SlowHashQueue and
		// SlowHashWait: 429 before anything else is known about the key,
		// with no RateLimit state (the answer carries Retry-After: 1).
		return deny(ReasonRateLimited, route), 0
	}
	if !c.Active {
		return deny(ReasonAPIKeyInactive, route), 0
	}
	if !c.ExpiresAt.IsZero() && !req.Now.Before(c.ExpiresAt) {
		return deny(ReasonAPIKeyExpired, route), 0
	}
	if !c.ipAllowed(req.ClientIP) {
		return deny(ReasonIPNotAllowed, route), 0
	}
	if !c.originAllowed(req.Origin) {
		return deny(ReasonOriginNotAllowed, route), 0
	}
	if !c.pathAllowed(req.Method, m.Path) {
		return deny(ReasonPathNotAllowed, route), 0
	}
	d = Decision{
		Verdict:  Allow,
		Route:    route,
		Identity: Identity{Type: CredentialAPIKey, ClientID: c.ID, ClientKey: c.ClientKey},
	}
	limit = c.RateLimitPerMin
	if limit < 0 {
		limit = e.cfg.DefaultRateLimitPerMin
	}
	if req.Recheck {
		return d, 0 // a re-check neither spends nor waits for a token
	}
	return d, max(limit, 0)
}
