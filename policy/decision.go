package policy

// Verdict says whether a request passes. The zero Verdict denies.
type Verdict uint8

// Verdicts.
const (
	Deny Verdict = iota
	Allow
)

// CredentialKind is the kind of credential a request carries.
type CredentialKind uint8

// Credential kinds. The zero kind means no credential.
const (
	CredentialNone CredentialKind = iota
	CredentialAPIKey
	CredentialJWT
)

// String returns "api_key", "jwt" or "" (the X-Auth-Type values and the
// routes-file names).
func (k CredentialKind) String() string {
	switch k {
	case CredentialAPIKey:
		return "api_key"
	case CredentialJWT:
		return "jwt"
	}
	return ""
}

// Identity is who an allowed request was made by; the proxy turns it into the
// identity headers of SPEC §5. Its strings are owned by long-lived compiled
// values (Client, User, Directory), never by the request.
type Identity struct {
	Type      CredentialKind
	ClientID  string // api_key: api_clients.id
	ClientKey string // api_key: api_clients.client_key
	UserID    string // jwt: users.id
	UserSub   string // jwt: users.authentik_sub
	UserEmail string // jwt: users.email, "" when NULL
	// ScopeKind is "company" or "site" and ScopeKey the company_key or
	// site_key the request was authorized on; both "" for scope any and for
	// routes without a scope. X-Auth-Scope is ScopeKind + ":" + ScopeKey.
	ScopeKind string
	ScopeKey  string
}

// RateLimitState holds the numbers the RateLimit headers need. It is filled
// only when the client has a per-minute limit and the request reached its
// bucket (SPEC §5 Rate-limit headers).
type RateLimitState struct {
	Applied    bool // the client is rate limited and the bucket was consulted
	Limit      int  // N of RateLimit-Policy q=N and RateLimit-Limit
	Remaining  int  // whole tokens left (RateLimit-Remaining, r=)
	ResetSecs  int  // whole seconds, rounded up, until the bucket is full (t=, RateLimit-Reset)
	RetryAfter int  // on 429: whole seconds, rounded up, at least 1, until one token is back
}

// Decision is the answer for one request. The zero Decision denies with
// [ReasonInternal] semantics (status 500): nothing passes by accident.
type Decision struct {
	Verdict   Verdict
	Reason    Reason // ReasonNone when allowed
	Identity  Identity
	RateLimit RateLimitState
	// Route is the index of the matched route in the routes file, -1 when no
	// route matched or no routes file is loaded.
	Route int
}

// Allowed reports whether the request may pass.
func (d Decision) Allowed() bool { return d.Verdict == Allow && d.Reason == ReasonNone }

// Status returns the HTTP status to answer with: 200 when allowed, the
// reason's status when denied, 500 for the zero Decision.
func (d Decision) Status() int {
	if d.Allowed() {
		return 200
	}
	if d.Reason == ReasonNone {
		return 500
	}
	return d.Reason.Status()
}

// Denied returns a denial with reason r.
func Denied(r Reason) Decision { return Decision{Verdict: Deny, Reason: r, Route: -1} }
