package policy

import (
	"iter"
	"maps"
	"strings"
)

// CORS is the compiled cors: block of a routes file (SPEC §11). It is
// immutable and safe for concurrent use; [Routes.CORS] returns it, nil when
// the file has no cors: block (then CORS handling is off and an OPTIONS
// request needs a credential like any other).
//
// Origins are allowed from a list of allowed_origins patterns (SPEC §3
// syntax) or, with allow_origins: clients, from the allowed_origins of the
// active clients ([ClientOrigins]). An opaque origin ("null": sandboxed
// frames, file: pages, redirects) is never allowed, not even by "*": any
// page can make its requests carry it.
type CORS struct {
	fromClients bool
	origins     originSet // the list; unused with fromClients
	methods     []string  // allow_methods, as written (methods are case-sensitive)
	headers     []string  // allow_headers, lower case (names are not)
	credentials bool

	allowMethods  string // the Access-Control-Allow-Methods value
	allowHeaders  string // the Access-Control-Allow-Headers value, "" when none
	exposeHeaders string // the Access-Control-Expose-Headers value, "" when none
	maxAge        string // the Access-Control-Max-Age value
}

// Default values of the cors: block's optional fields.
var (
	defaultCORSMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	defaultCORSHeaders = []string{"Authorization", "Content-Type", "X-API-Key", "X-Client-Key"}
	defaultCORSExpose  = []string{"X-Request-Id", "RateLimit", "RateLimit-Policy", "RateLimit-Limit",
		"RateLimit-Remaining", "RateLimit-Reset", "Retry-After"}
)

// defaultCORSMaxAge is max_age when the block has none, in seconds.
const defaultCORSMaxAge = 600

// maxCORSMaxAge bounds max_age: a day (browsers cap it lower anyway:
// Chromium at 2 hours, Firefox at a day).
const maxCORSMaxAge = 86400

// AllowMethods returns the Access-Control-Allow-Methods value.
func (c *CORS) AllowMethods() string { return c.allowMethods }

// AllowHeaders returns the Access-Control-Allow-Headers value, "" when
// allow_headers is empty.
func (c *CORS) AllowHeaders() string { return c.allowHeaders }

// ExposeHeaders returns the Access-Control-Expose-Headers value, "" when
// expose_headers is empty.
func (c *CORS) ExposeHeaders() string { return c.exposeHeaders }

// MaxAge returns the Access-Control-Max-Age value (seconds).
func (c *CORS) MaxAge() string { return c.maxAge }

// Credentials reports allow_credentials: answers then carry
// Access-Control-Allow-Credentials: true.
func (c *CORS) Credentials() bool { return c.credentials }

// OriginAllowed reports whether origin (an Origin header) may read answers:
// it is a well-formed scheme://host[:port] origin allowed by the list, or,
// with allow_origins: clients, by co (nil: no client lists any). With
// allow_credentials a client's "*" entry does not count: it would let every
// site read answers made with the browser's cookies. It does not allocate.
func (c *CORS) OriginAllowed(origin string, co *ClientOrigins) bool {
	if c == nil {
		return false
	}
	if _, ok := parseRequestOrigin(origin); !ok {
		return false // "null", "", or not an origin
	}
	if !c.fromClients {
		return c.origins.match(origin)
	}
	if co == nil {
		return false
	}
	if co.set.any && !c.credentials {
		return true
	}
	s := co.set
	s.any = false
	return s.match(origin)
}

// methodAllowed reports whether the requested method is in allow_methods
// (compared case-sensitively, as browsers compare them).
func (c *CORS) methodAllowed(m string) bool {
	for _, a := range c.methods {
		if a == m {
			return true
		}
	}
	return false
}

// headersAllowed reports whether every name of an
// Access-Control-Request-Headers list is in allow_headers. Names compare
// case-insensitively; optional whitespace around names and empty list
// elements are skipped (RFC 9110 §5.6.1); a name that is not a token fails.
// It does not allocate, and takes time linear in the list's length times
// allow_headers' (the list is bounded by the request's header size).
func (c *CORS) headersAllowed(list string) bool {
	for len(list) > 0 {
		name := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			name, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		name = strings.Trim(name, " \t")
		if name == "" {
			continue
		}
		if !isToken(name) || !c.headerListed(name) {
			return false
		}
	}
	return true
}

func (c *CORS) headerListed(name string) bool {
	for _, h := range c.headers {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// PreflightRequest is what a CORS preflight asks: the OPTIONS request's own
// fields (method, raw path, Origin, forwarded-header verdict) in Req, and the
// Access-Control-Request-Method and -Headers values. Credentials in Req are
// never read: a preflight carries none, and one that does is answered the
// same.
type PreflightRequest struct {
	Req     *Request
	Method  string // Access-Control-Request-Method
	Headers string // Access-Control-Request-Headers, all lines joined with ","
}

// Preflight decides a CORS preflight (SPEC §11): an OPTIONS request with
// an Origin and an Access-Control-Request-Method, whose Req.Method is
// "OPTIONS". It returns a nil *CORS when scopegate does not answer it as a
// preflight: no cors: block, or no route matches the path for the
// requested method (then it is decided as an ordinary request, usually
// 403 no_route). Otherwise the Decision allows (the caller answers 204 with
// the block's headers) or denies: raw path screening first (path_invalid),
// then the forwarded headers (forwarded_invalid), then cors_rejected when
// the origin, the method or any requested header is not allowed, or the
// requested method is not a method token. co is the active clients'
// origins for allow_origins: clients. It does not allocate when the path
// has no escapes or Req.Scratch is large enough.
func (e *Engine) Preflight(p PreflightRequest, co *ClientOrigins) (*CORS, Decision) {
	rs := e.routes.Load()
	c := rs.CORS()
	if c == nil {
		return nil, Decision{}
	}
	req := p.Req
	// The preflight stands for the request it announces: the route is
	// matched with the method that request will use.
	method := strings.Trim(p.Method, " \t")
	saved := req.Method
	req.Method = method
	m, d := e.matchRoute(req, rs)
	req.Method = saved
	if d.Reason == ReasonNoRoute {
		return nil, Decision{}
	}
	if d.Reason == ReasonOriginNotAllowed { // a repeated Origin
		return c, deny(ReasonCORSRejected, m.Route)
	}
	if d.Reason != ReasonNone {
		return c, d // path_invalid, forwarded_invalid
	}
	if !isToken(method) {
		return c, deny(ReasonCORSRejected, m.Route)
	}
	if !c.OriginAllowed(req.Origin, co) || !c.methodAllowed(method) || !c.headersAllowed(p.Headers) {
		return c, deny(ReasonCORSRejected, m.Route)
	}
	return c, Decision{Verdict: Allow, Route: m.Route}
}

// CORS returns the routes file's cors: block, nil when it has none (or r is
// nil).
func (r *Routes) CORS() *CORS {
	if r == nil {
		return nil
	}
	return r.cors
}

// CORS returns the cors: block of the routes in use, nil when CORS handling
// is off.
func (e *Engine) CORS() *CORS { return e.routes.Load().CORS() }

// ClientOrigins is the union of the allowed_origins lists of the active
// clients: the origins allow_origins: clients admits (SPEC §11). A client
// whose list is empty (no restriction) lists no origin. It is immutable and
// safe for concurrent use; the store builds a new one with every client
// snapshot, so a suspended client's origins leave with it.
type ClientOrigins struct {
	set originSet
}

// NewClientOrigins compiles the origins of the active clients in clients
// (inactive and nil ones are skipped). It reuses each client's compiled
// patterns, once per distinct list.
func NewClientOrigins(clients iter.Seq[*Client]) *ClientOrigins {
	o := NewOriginLists()
	for c := range clients {
		o.Add(c)
	}
	return o.Origins()
}

// OriginLists counts the active clients of each distinct compiled
// allowed_origins list (clients carrying equal lists share one, see
// [CompileClient]), so that a store applying the change of one client
// rebuilds its [ClientOrigins] only when a list gains its first active
// client or loses its last, and then in time of the number of distinct
// lists, not of clients. It is not safe for concurrent use: its owner
// serializes changes; the ClientOrigins it returns are immutable.
type OriginLists struct {
	counts map[*originList]int
	co     *ClientOrigins // nil: changed since the last Origins
}

// NewOriginLists returns empty counts.
func NewOriginLists() *OriginLists {
	return &OriginLists{counts: make(map[*originList]int)}
}

// Clone returns a copy that changes independently, in time of the number
// of distinct lists.
func (o *OriginLists) Clone() *OriginLists {
	return &OriginLists{counts: maps.Clone(o.counts), co: o.co}
}

// Add counts c's list when c is active and restricts origins; nil is
// ignored.
func (o *OriginLists) Add(c *Client) {
	if c == nil || !c.Active || c.originList == nil {
		return
	}
	n := o.counts[c.originList]
	if n == 0 {
		o.co = nil
	}
	o.counts[c.originList] = n + 1
}

// Remove undoes Add(c) for a client added before.
func (o *OriginLists) Remove(c *Client) {
	if c == nil || !c.Active || c.originList == nil {
		return
	}
	switch n := o.counts[c.originList]; n {
	case 0:
	case 1:
		delete(o.counts, c.originList)
		o.co = nil
	default:
		o.counts[c.originList] = n - 1
	}
}

// Origins returns the union of the counted lists; the same value until a
// list comes or goes.
func (o *OriginLists) Origins() *ClientOrigins {
	if o.co != nil {
		return o.co
	}
	co := &ClientOrigins{}
	seen := make(map[originPattern]struct{})
	for l := range o.counts {
		s := &l.originSet
		co.set.any = co.set.any || s.any
		for k := range s.exact {
			if co.set.exact == nil {
				co.set.exact = make(map[string]struct{})
			}
			co.set.exact[k] = struct{}{}
		}
		for _, w := range s.wild {
			if _, dup := seen[w]; !dup {
				seen[w] = struct{}{}
				co.set.wild = append(co.set.wild, w)
			}
		}
	}
	o.co = co
	return co
}

// isToken reports whether s is a non-empty RFC 9110 token (a method or a
// header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
