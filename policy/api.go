package policy

// This file pins the exported surface that store and proxy build against.
// The policy package owner may move these declarations into focused files and
// fill in the bodies, but keeps the names and signatures (or updates every
// caller in the same change).

import (
	"net/netip"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// CredentialHeaders holds the raw values a credential can come from. Empty
// means absent.
type CredentialHeaders struct {
	APIKey        string // SCOPEGATE_API_KEY_HEADER (default X-API-Key)
	ClientKey     string // X-Client-Key
	Authorization string
	JWTCookie     string // value of the cookie named by SCOPEGATE_JWT_COOKIE
}

// Credential is the one credential a request carries (SPEC §3: the first
// present of X-API-Key / the X-Client-Key pair, then Authorization, then the
// JWT cookie). Its strings alias the request's buffers.
type Credential struct {
	Kind CredentialKind
	// API key: ClientKey and Secret (split at the last dot, or the
	// X-Client-Key pair). Malformed is set when an API key was presented but
	// cannot be split; it is then api_key_invalid.
	ClientKey string
	Secret    string
	Malformed bool
	// Token is the whole presented token: the API key as sent, or the JWT.
	Token string
	// InAuthorization reports that the credential came in the Authorization
	// header (stripped before forwarding with SCOPEGATE_STRIP_CREDENTIALS).
	InAuthorization bool
}

// ParseCredential picks and parses the credential of a request. It does not allocate.
func ParseCredential(h CredentialHeaders) Credential { return Credential{} }

// ValueSource gives the engine the request headers and query parameters a
// route's scope may read (scope: site:header:NAME, company:query:NAME).
type ValueSource interface {
	Header(name string) string
	Query(name string) string
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
}

// Match is the request-level result of [Engine.Match]: the matched route and
// the decoded path and placeholder values. Its zero value is "not matched".
type Match struct {
	Route int // index of the route, -1 with no routes file
	// Public reports an auth: none route: no credential needed, none checked.
	Public bool
	Path   string // the percent-decoded path the rules matched
}

// JWTConfig configures token verification.
type JWTConfig struct {
	Keys         KeySet        // JWKS keys; nil when only HS256 is configured
	HS256Secret  []byte        // empty: HS256 is never accepted
	Algorithms   []string      // allow-list; default RS256, ES256, EdDSA
	Issuer       string        // "" : iss not checked
	Audience     string        // "" : aud not checked
	Leeway       time.Duration // default 30s
	SubjectClaim string        // default "sub"
	CacheSize    int           // verified-token cache bound; default 100000
}

// KeySet resolves the verification key of a token, normally by its kid. It
// is satisfied by keyfunc.Keyfunc (github.com/MicahParks/keyfunc/v3).
type KeySet interface {
	Keyfunc(token *jwt.Token) (any, error)
}

// Claims is what the engine keeps of a verified token.
type Claims struct {
	Subject   string
	ExpiresAt time.Time
}

// EngineConfig configures an [Engine].
type EngineConfig struct {
	Routes                 *Routes // nil: no routes file (every request needs a valid credential)
	DefaultRateLimitPerMin int     // for clients whose rate_limit_per_min is NULL; 0 = unlimited
	JWT                    JWTConfig
	TrustedProxies         []netip.Prefix
}

// Routes is a compiled routes file.
type Routes struct{}

// Engine decides. It is safe for concurrent use. Its token buckets and
// verified-token cache live as long as the Engine; routes can be swapped with
// [Engine.SetRoutes] without losing them.
type Engine struct{ cfg EngineConfig }

// NewEngine builds an Engine.
func NewEngine(cfg EngineConfig) (*Engine, error) { return &Engine{cfg: cfg}, nil }

// SetRoutes swaps the routes atomically (reload). nil removes the routes file.
func (e *Engine) SetRoutes(r *Routes) {}

// Match runs the request-level steps of SPEC §4's order: raw path screening,
// route match (no_route), and whether the route accepts the credential kind
// (credential_not_accepted, credentials_missing). A Decision with a Reason
// denies; otherwise the caller resolves the credential and calls
// AuthorizeClient or AuthorizeUser. It does not allocate.
func (e *Engine) Match(req *Request) (Match, Decision) { return Match{}, Decision{} }

// AuthorizeClient runs the API-key checks 2–8 of SPEC §3 for a client the
// store looked up (nil: unknown client_key), including the hash check and the
// token bucket. It does not allocate for a client whose token is cached.
func (e *Engine) AuthorizeClient(req *Request, m *Match, c *Client) Decision { return Decision{} }

// VerifyToken verifies the request's JWT (signature, alg allow-list, iss,
// aud, exp, nbf with leeway), from the verified-token cache when it can.
// A non-zero Reason in the Decision denies (token_expired, token_invalid).
func (e *Engine) VerifyToken(req *Request) (Claims, Decision) { return Claims{}, Decision{} }

// AuthorizeUser runs the user checks (user_unknown, user_inactive) and the
// scope, module and grant checks of SPEC §4 for a user the store looked up
// (nil: unknown subject).
func (e *Engine) AuthorizeUser(req *Request, m *Match, u *User, dir *Directory) Decision {
	return Decision{}
}

// ClientIP returns the client address of SPEC §5: peer, or, when peer is a
// trusted proxy, the right-most untrusted address of xff (else xRealIP). An
// unparsable entry from a trusted peer is ReasonForwardedInvalid. Headers of
// an untrusted peer are never read.
func (e *Engine) ClientIP(peer netip.Addr, xff, xRealIP string) (netip.Addr, Reason) {
	return peer, ReasonNone
}

// IsTrustedProxy reports whether peer is in SCOPEGATE_TRUSTED_PROXIES.
func (e *Engine) IsTrustedProxy(peer netip.Addr) bool { return false }

// RoutesError is a problem in a routes file, with its 1-based line.
type RoutesError struct {
	Line int
	Msg  string
}

func (e RoutesError) Error() string { return "line " + itoa(e.Line) + ": " + e.Msg }

// ParseRoutes parses and compiles a routes file (SPEC §4). Errors (as
// RoutesError values joined with errors.Join) make the file invalid;
// warnings (shadowed rules) do not.
func ParseRoutes(data []byte) (r *Routes, warnings []RoutesError, err error) {
	return &Routes{}, nil, nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
