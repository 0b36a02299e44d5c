package policy

// AuthorizeUser runs the user checks (user_unknown, user_inactive) and the
// scope, module and grant checks of SPEC §4 for a user the store looked up
// by the verified subject (nil: unknown subject), in this order:
//
//  1. user_unknown, user_inactive;
//  2. with no routes file, or no matching route under default:
//     authenticated, or a route without module and scope: allow;
//  3. scope value present and known (scope_unknown; also when the path names
//     both {company} and {site} and the site is not the company's), then
//     active (scope_inactive: the company, or the site and its company);
//  4. module known (module_unknown) and active (module_inactive);
//  5. a grant of the route's action (or of action_by_method for the method),
//     or of a superuser action, on the scope (permission_denied).
//
// On allow, Identity carries the user and, for company and site scopes, the
// scope's kind and key (the key even when the request named the id). It does
// not allocate.
func (e *Engine) AuthorizeUser(req *Request, m *Match, u *User, dir *Directory) Decision {
	d := e.authorizeUser(req, m, u, dir)
	if e.trace != nil {
		e.traceUser(req, m, u, dir, d)
	}
	return d
}

func (e *Engine) authorizeUser(req *Request, m *Match, u *User, dir *Directory) Decision {
	route := m.Route
	if u == nil {
		return deny(ReasonUserUnknown, route)
	}
	if !u.Active {
		return deny(ReasonUserInactive, route)
	}
	dec := Decision{Verdict: Allow, Route: route, Identity: Identity{
		Type: CredentialJWT, UserID: u.ID, UserSub: u.Sub, UserEmail: u.Email,
	}}
	r := m.rule
	if r == nil {
		return dec
	}
	sc := r.scope
	var co *Company
	var st *Site
	switch sc.kind {
	case scopeCompany:
		if co = dir.Company(scopeValue(req, m, sc)); co == nil {
			return deny(ReasonScopeUnknown, route)
		}
	case scopeSite:
		if st = dir.Site(scopeValue(req, m, sc)); st == nil {
			return deny(ReasonScopeUnknown, route)
		}
	}
	if r.hasCompany && r.hasSite {
		pc, ps := dir.Company(m.caps[slotCompany]), dir.Site(m.caps[slotSite])
		if pc == nil || ps == nil || ps.Company != pc {
			return deny(ReasonScopeUnknown, route)
		}
	}
	switch {
	case co != nil:
		if !co.Active {
			return deny(ReasonScopeInactive, route)
		}
		dec.Identity.ScopeKind, dec.Identity.ScopeKey = "company", co.Key
	case st != nil:
		if !st.Active {
			return deny(ReasonScopeInactive, route)
		}
		dec.Identity.ScopeKind, dec.Identity.ScopeKey = "site", st.Key
	}
	if r.module == "" {
		return dec
	}
	mod := dir.Module(r.module)
	if mod == nil {
		return deny(ReasonModuleUnknown, route)
	}
	if !mod.Active {
		return deny(ReasonModuleInactive, route)
	}
	action := r.action
	if action == "" && m.routes != nil {
		action = m.routes.actionByMethod[req.Method]
	}
	if action != "" && u.hasGrant(mod.Key, action, sc.kind, co, st) {
		return dec
	}
	if m.routes != nil {
		for _, a := range m.routes.superuser {
			if u.hasGrant(mod.Key, a, sc.kind, co, st) {
				return dec
			}
		}
	}
	return deny(ReasonPermissionDenied, route)
}

// scopeValue reads the scope value from the path capture, a header or a
// query parameter. A header or parameter that occurs more than once is
// ambiguous and reads as missing (scope_unknown): the upstream might act on
// another copy than the one authorized.
func scopeValue(req *Request, m *Match, sc scopeSpec) string {
	var v string
	n := 0
	switch sc.source {
	case fromPath:
		if sc.slot >= 0 {
			return m.caps[sc.slot]
		}
		return ""
	case fromHeader:
		if req.Values != nil {
			v, n = req.Values.Header(sc.name)
		}
	case fromQuery:
		if req.Values != nil {
			v, n = req.Values.Query(sc.name)
		}
	}
	if n != 1 {
		return ""
	}
	return v
}
