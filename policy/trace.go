package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Tracer receives the steps of a decision, as the engine takes them, each
// with its outcome: the step's name ("path", "route", "api key", "grant",
// ...), whether it passed, and a sentence saying what was found. `scopegate
// explain` prints them. It is set only on an engine built for explaining
// ([EngineConfig.Trace]); a serving engine has none and pays one nil check
// per engine call, with nothing described or allocated.
type Tracer func(step string, ok bool, detail string)

// The describers below run after the engine decided, from its Decision:
// they say why, they never decide. Each stops at the step whose reason the
// decision carries.

func (e *Engine) traceClientIP(peer netip.Addr, xff, xRealIP string, a netip.Addr, r Reason) {
	peer = peer.Unmap()
	switch {
	case !e.IsTrustedProxy(peer):
		e.trace("client address", true, fmt.Sprintf("%s: the peer, which is not in SCOPEGATE_TRUSTED_PROXIES, so forwarded headers are not read", a))
	case r != ReasonNone:
		e.trace("client address", false, fmt.Sprintf("%s from the trusted peer %s: X-Forwarded-For %q / X-Real-IP %q holds an entry that is not a plain IP address", r, peer, xff, xRealIP))
	case xff != "":
		e.trace("client address", true, fmt.Sprintf("%s: the right-most untrusted entry of X-Forwarded-For %q (the peer %s is a trusted proxy)", a, xff, peer))
	case xRealIP != "":
		e.trace("client address", true, fmt.Sprintf("%s: X-Real-IP (the peer %s is a trusted proxy)", a, peer))
	default:
		e.trace("client address", true, fmt.Sprintf("%s: the peer (a trusted proxy that sent no forwarded header)", a))
	}
}

func (e *Engine) traceMatch(req *Request, m *Match, d Decision) {
	if d.Reason == ReasonPathInvalid && m.Path == "" {
		e.trace("path", false, fmt.Sprintf("path_invalid: the raw path %q holds an encoded slash or backslash, a NUL, an empty segment or a dot segment", req.RawPath))
		return
	}
	if m.Path == "" || m.Path == req.RawPath {
		e.trace("path", true, fmt.Sprintf("%q passes raw path screening", req.RawPath))
	} else {
		e.trace("path", true, fmt.Sprintf("%q passes raw path screening; rules match %q", req.RawPath, m.Path))
	}
	if req.Forwarded != ReasonNone {
		e.trace("forwarded headers", false, req.Forwarded.String()+": see the client address step")
		return
	}
	e.trace("forwarded headers", true, "readable (or not read)")
	if req.OriginRepeated {
		e.trace("origin", false, "origin_not_allowed: Origin came in more than one line")
		return
	}
	switch {
	case m.routes == nil:
		e.trace("route", true, "no routes file: every request needs a valid credential and nothing more")
	case m.rule == nil && d.Reason == ReasonPathInvalid:
		e.trace("route", false, "path_invalid: the path holds %2F and no route allowing encoded slashes matches")
		return
	case m.rule == nil && d.Reason == ReasonNoRoute:
		e.trace("route", false, fmt.Sprintf("no_route: no route matches %s %s, and the file says default: deny", req.Method, m.Path))
		return
	case m.rule == nil:
		e.trace("route", true, fmt.Sprintf("no route matches %s %s; default: authenticated, so any valid credential passes", req.Method, m.Path))
	case d.Reason == ReasonPathInvalid:
		e.trace("route", false, fmt.Sprintf("path_invalid: route #%d %s matches but does not set allow_encoded_slash, and the path holds %%2F", m.Route, m.rule.describe(m.routes, req.Method)))
		return
	default:
		e.trace("route", true, fmt.Sprintf("#%d %s", m.Route, m.rule.describe(m.routes, req.Method)))
	}
	if m.Public {
		e.trace("credential", true, "auth: none: a public route, no credential needed (any sent is ignored)")
		return
	}
	kind := req.Cred.Kind.String()
	switch d.Reason {
	case ReasonCredentialsMissing:
		e.trace("credential", false, "credentials_missing: no API key header, Authorization or JWT cookie")
	case ReasonCredentialNotAccepted:
		e.trace("credential", false, fmt.Sprintf("credential_not_accepted: %s, and the route accepts %s", kind, m.rule.accept))
	default:
		e.trace("credential", true, kind+", accepted by the route")
	}
}

// describe is a rule as the routes file wrote it.
func (r *route) describe(rs *Routes, method string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "(line %d) path %s", r.line, r.path)
	if len(r.glob.methods) > 0 {
		fmt.Fprintf(&b, ", methods %s", strings.Join(r.glob.methods, ","))
	}
	if r.public {
		b.WriteString(", auth: none")
		return b.String()
	}
	if r.accept != acceptAll {
		fmt.Fprintf(&b, ", auth: [%s]", r.accept)
	}
	if r.module != "" {
		fmt.Fprintf(&b, ", module %s", r.module)
		if r.action != "" {
			fmt.Fprintf(&b, ", action %s", r.action)
		} else if rs != nil {
			fmt.Fprintf(&b, ", action by method: %s → %q", method, rs.actionByMethod[method])
		}
	}
	if r.scope.kind != scopeNone {
		fmt.Fprintf(&b, ", scope %s", r.scope)
	}
	return b.String()
}

// String is the scope as written in a routes file: site:{site},
// company:header:X-Company, any.
func (s scopeSpec) String() string {
	kind := "company"
	switch s.kind {
	case scopeNone:
		return ""
	case scopeAny:
		return "any"
	case scopeSite:
		kind = "site"
	}
	switch s.source {
	case fromHeader:
		return kind + ":header:" + s.name
	case fromQuery:
		return kind + ":query:" + s.name
	}
	return kind + ":{" + s.name + "}"
}

// String lists the credential kinds: "api_key, jwt".
func (a acceptMask) String() string {
	var k []string
	if a&acceptAPIKey != 0 {
		k = append(k, "api_key")
	}
	if a&acceptJWT != 0 {
		k = append(k, "jwt")
	}
	return strings.Join(k, ", ")
}

func (e *Engine) traceClient(req *Request, m *Match, c *Client, d Decision) {
	cred := &req.Cred
	if d.Reason == ReasonAPIKeyInvalid {
		switch {
		case cred.Malformed:
			e.trace("api key", false, "api_key_invalid: the key is not <client_key>.<secret>")
		case c == nil || c.ClientKey != cred.ClientKey:
			e.trace("api key", false, fmt.Sprintf("api_key_invalid: no client with client_key %q", cred.ClientKey))
		default:
			e.trace("api key", false, fmt.Sprintf("api_key_invalid: the secret does not match client %q's api_key_hash", c.ClientKey))
		}
		return
	}
	if d.Reason == ReasonRateLimited && !d.RateLimit.Applied { // refused by the slow-hash gate, not the bucket
		e.trace("api key", false, fmt.Sprintf("rate_limited: client %q's bcrypt/Argon2id check got no hashing slot (its queue was full or the wait ran out); the secret was not checked", c.ClientKey))
		return
	}
	e.trace("api key", true, fmt.Sprintf("client %q (%s, id %s): the secret matches", c.ClientKey, c.Name, c.ID))
	list := func(l []string) string {
		if len(l) == 0 {
			return "empty: no restriction"
		}
		return strings.Join(l, ", ")
	}
	limit := c.RateLimitPerMin
	if limit < 0 {
		limit = e.cfg.DefaultRateLimitPerMin
	}
	rec := c.Record()
	steps := []struct {
		name   string
		reason Reason
		detail string
	}{
		{"status", ReasonAPIKeyInactive, fmt.Sprintf("status %q (only active passes)", rec.Status)},
		{"expiry", ReasonAPIKeyExpired, fmt.Sprintf("expires_at %s", timeOrNever(c.ExpiresAt))},
		{"allowed_ips", ReasonIPNotAllowed, fmt.Sprintf("client address %s; list: %s", req.ClientIP, list(rec.AllowedIPs))},
		{"allowed_origins", ReasonOriginNotAllowed, fmt.Sprintf("Origin %q; list: %s", req.Origin, list(rec.AllowedOrigins))},
		{"allowed_paths", ReasonPathNotAllowed, fmt.Sprintf("%s %s; list: %s", req.Method, m.Path, list(rec.AllowedPaths))},
		{"rate limit", ReasonRateLimited, fmt.Sprintf("%d per minute (0: unlimited); %d left", limit, d.RateLimit.Remaining)},
	}
	for _, s := range steps {
		if d.Reason == s.reason {
			e.trace(s.name, false, s.reason.String()+": "+s.detail)
			return
		}
		e.trace(s.name, true, s.detail)
	}
	if m.rule != nil && m.rule.module != "" {
		e.trace("grant", true, "API keys are authorized by their allowed_paths; the route's module check applies to users only")
	}
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func (e *Engine) traceToken(req *Request, c Claims, d Decision) {
	if d.Reason == ReasonNone {
		e.trace("token", true, fmt.Sprintf("verified; subject %q, expires %s", c.Subject, timeOrNever(c.ExpiresAt)))
		return
	}
	// What the token says of itself (unverified), against what is required.
	var b strings.Builder
	b.WriteString(d.Reason.String())
	mc := jwt.MapClaims{}
	if t, _, err := jwt.NewParser().ParseUnverified(req.Cred.Token, mc); err != nil {
		b.WriteString(": not a readable JWT")
	} else {
		v := e.jwt.cfg
		fmt.Fprintf(&b, ": the token says alg %v, kid %v, iss %v, aud %v, exp %v, nbf %v, %s %v", t.Header["alg"], t.Header["kid"],
			mc["iss"], mc["aud"], mc["exp"], mc["nbf"], v.SubjectClaim, mc[v.SubjectClaim])
		fmt.Fprintf(&b, "; required: alg in %s, a key that verifies it", strings.Join(e.jwt.algs, ","))
		if v.Issuer != "" {
			fmt.Fprintf(&b, ", iss %q", v.Issuer)
		}
		if v.Audience != "" {
			fmt.Fprintf(&b, ", aud containing %q", v.Audience)
		}
		if !v.AllowMissingExp {
			b.WriteString(", an exp claim (SCOPEGATE_JWT_REQUIRE_EXP)")
		}
		fmt.Fprintf(&b, ", exp and nbf within a leeway of %s, a %q claim", v.Leeway, v.SubjectClaim)
	}
	e.trace("token", false, b.String())
}

func (e *Engine) traceUser(req *Request, m *Match, u *User, dir *Directory, d Decision) {
	switch d.Reason {
	case ReasonUserUnknown:
		e.trace("user", false, "user_unknown: no users row has the token's subject as authentik_sub")
		return
	case ReasonUserInactive:
		e.trace("user", false, fmt.Sprintf("user_inactive: user %q (id %s): status is not 'active' or is_active is false", u.Sub, u.ID))
		return
	}
	e.trace("user", true, fmt.Sprintf("user %q (id %s) is active", u.Sub, u.ID))
	r := m.rule
	if r == nil || r.module == "" && r.scope.kind == scopeNone {
		e.trace("grant", d.Allowed(), "the route names no module and no scope: a known, active user passes")
		return
	}
	sc := r.scope
	var co *Company
	var st *Site
	value := scopeValue(req, m, sc)
	switch sc.kind {
	case scopeAny:
		e.trace("scope", true, "any company or site")
	case scopeCompany, scopeSite:
		if d.Reason == ReasonScopeUnknown {
			e.trace("scope", false, fmt.Sprintf("scope_unknown: %s read %q: missing, repeated, unknown, or a site not of the path's {company}", sc, value))
			return
		}
		if sc.kind == scopeCompany {
			co = dir.Company(value)
			e.trace("scope", d.Reason != ReasonScopeInactive, fmt.Sprintf("%s read %q: company %s, active %t", sc, value, co.Key, co.Active))
		} else {
			st = dir.Site(value)
			e.trace("scope", d.Reason != ReasonScopeInactive, fmt.Sprintf("%s read %q: site %s, active %t (with its company)", sc, value, st.Key, st.Active))
		}
		if d.Reason == ReasonScopeInactive {
			return
		}
	}
	if r.module == "" {
		e.trace("grant", true, "the route names no module: a known, active user in scope passes")
		return
	}
	mod := dir.Module(r.module)
	switch d.Reason {
	case ReasonModuleUnknown:
		e.trace("module", false, fmt.Sprintf("module_unknown: no module %q", r.module))
		return
	case ReasonModuleInactive:
		e.trace("module", false, fmt.Sprintf("module_inactive: module %q is not active", r.module))
		return
	}
	e.trace("module", true, fmt.Sprintf("module %q is active", mod.Key))
	action := r.action
	if action == "" && m.routes != nil {
		action = m.routes.actionByMethod[req.Method]
	}
	on := fmt.Sprintf("%s on %s", action, mod.Key)
	if hit := u.grantFor(mod.Key, action, sc.kind, co, st); hit != grantNone {
		e.trace("grant", true, on+": "+hit.describe(co, st))
		return
	}
	if m.routes != nil {
		for _, a := range m.routes.superuser {
			if hit := u.grantFor(mod.Key, a, sc.kind, co, st); hit != grantNone {
				e.trace("grant", true, fmt.Sprintf("%s: no such grant, but the superuser action %s: %s", on, a, hit.describe(co, st)))
				return
			}
		}
	}
	var held []string
	for _, g := range u.grants {
		if mg := dir.Module(g.Module); g.Module == mod.Key || mg != nil && mg.Key == mod.Key {
			held = append(held, fmt.Sprintf("%s on %s:%s", g.Action, g.ScopeType, scopeName(dir, g)))
		}
	}
	have := "none"
	if len(held) > 0 {
		have = strings.Join(held, ", ")
	}
	e.trace("grant", false, fmt.Sprintf("permission_denied: no %s grant (nor a superuser action's) on this scope; the user's grants on %s: %s", on, mod.Key, have))
}

// describe says which grant a hit is.
func (h grantHit) describe(co *Company, st *Site) string {
	switch h {
	case grantAny:
		return "a grant on some company or site (scope any)"
	case grantCompany:
		return "the company grant on " + co.Key
	case grantSite:
		return "the site grant on " + st.Key
	case grantSiteCompany:
		return "the company grant on " + st.Company.Key + ", the site's company"
	}
	return "none"
}

// scopeName is a grant's company or site key when the directory knows it.
func scopeName(dir *Directory, g GrantRecord) string {
	if g.ScopeType == "company" {
		if c := dir.Company(g.ScopeID); c != nil {
			return c.Key
		}
	} else if s := dir.Site(g.ScopeID); s != nil {
		return s.Key
	}
	return g.ScopeID
}
