package policy

// User is a compiled user: the identity and a grant index keyed by (module,
// action) holding company and site id sets, so a permission check is a few map
// lookups. Immutable and safe for concurrent use.
type User struct {
	ID    string
	Sub   string
	Email string
	// DisplayName is users.display_name ("" when NULL); user sync compares
	// it with the token's name.
	DisplayName string
	Active      bool // status 'active' and is_active
	grants      []GrantRecord
	index       map[grantKey]*grantSet
}

// grantKey is (module_key, action).
type grantKey struct{ module, action string }

// grantSet is the scopes one (module, action) is granted on.
type grantSet struct {
	companies map[string]struct{} // company ids
	sites     map[string]struct{} // site ids
}

// CompileUser builds a User. Grant modules and scopes are resolved through
// dir (a module by key or id; a legacy scope_id by key or id) so the index
// holds module keys and scope ids; grants whose scope dir does not know never
// match (a non-legacy scope id is kept as given). A nil dir resolves nothing.
func CompileUser(u UserRecord, grants []GrantRecord, dir *Directory) *User {
	usr := &User{
		ID: u.ID, Sub: u.Sub, Email: u.Email, DisplayName: u.DisplayName,
		Active: u.Status == "active" && u.IsActive,
		grants: grants,
		index:  make(map[grantKey]*grantSet),
	}
	for _, g := range grants {
		module := g.Module
		if m := dir.Module(module); m != nil {
			module = m.Key
		}
		var scope string
		switch g.ScopeType {
		case "company":
			if c := dir.Company(g.ScopeID); c != nil {
				scope = c.ID
			} else if !g.Legacy {
				scope = g.ScopeID
			}
		case "site":
			if s := dir.Site(g.ScopeID); s != nil {
				scope = s.ID
			} else if !g.Legacy {
				scope = g.ScopeID
			}
		}
		if scope == "" || module == "" || g.Action == "" {
			continue
		}
		k := grantKey{module, g.Action}
		set := usr.index[k]
		if set == nil {
			set = &grantSet{}
			usr.index[k] = set
		}
		if g.ScopeType == "company" {
			if set.companies == nil {
				set.companies = make(map[string]struct{})
			}
			set.companies[scope] = struct{}{}
		} else {
			if set.sites == nil {
				set.sites = make(map[string]struct{})
			}
			set.sites[scope] = struct{}{}
		}
	}
	return usr
}

// Grants returns the grants the user was compiled from.
func (u *User) Grants() []GrantRecord { return u.grants }

// scopeKind is the kind of scope a route names.
type scopeKind uint8

const (
	scopeNone scopeKind = iota
	scopeAny
	scopeCompany
	scopeSite
)

// grantHit says which grant satisfied a permission check.
type grantHit uint8

const (
	grantNone        grantHit = iota
	grantAny                  // scope any: a grant on some company or site
	grantCompany              // a company grant on the route's company
	grantSite                 // a site grant on the route's site
	grantSiteCompany          // a company grant on the site's company
)

// hasGrant reports whether the user holds (module, action) on the scope:
// a company grant on company; a site grant on site or a company grant on the
// site's company; for scopeAny any grant. It does not allocate.
func (u *User) hasGrant(module, action string, kind scopeKind, company *Company, site *Site) bool {
	return u.grantFor(module, action, kind, company, site) != grantNone
}

// grantFor is hasGrant telling which grant holds.
func (u *User) grantFor(module, action string, kind scopeKind, company *Company, site *Site) grantHit {
	set := u.index[grantKey{module, action}]
	if set == nil {
		return grantNone
	}
	switch kind {
	case scopeAny:
		if len(set.companies) > 0 || len(set.sites) > 0 {
			return grantAny
		}
	case scopeCompany:
		if _, ok := set.companies[company.ID]; ok {
			return grantCompany
		}
	case scopeSite:
		if _, ok := set.sites[site.ID]; ok {
			return grantSite
		}
		if site.Company != nil {
			if _, ok := set.companies[site.Company.ID]; ok {
				return grantSiteCompany
			}
		}
	}
	return grantNone
}
