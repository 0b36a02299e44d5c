package policy

import "slices"

// RouteInfo describes one route rule as the routes file wrote it, for
// display (the operator page). It holds no compiled state.
type RouteInfo struct {
	Line    int      // 1-based line in the file
	Path    string   // the path pattern
	Methods []string // upper case; empty: every method
	Module  string   // "" : no module check
	// Auth lists the credential kinds the route accepts ("api_key", "jwt"),
	// or is ["none"] for a public route.
	Auth []string
}

// Info returns route i's description; the zero RouteInfo when i is out of
// range.
func (r *Routes) Info(i int) RouteInfo {
	if r == nil || i < 0 || i >= len(r.rules) {
		return RouteInfo{}
	}
	rule := &r.rules[i]
	info := RouteInfo{Line: rule.line, Path: rule.path, Methods: slices.Clone(rule.glob.methods), Module: rule.module}
	switch {
	case rule.public:
		info.Auth = []string{"none"}
	default:
		if rule.accept&acceptAPIKey != 0 {
			info.Auth = append(info.Auth, CredentialAPIKey.String())
		}
		if rule.accept&acceptJWT != 0 {
			info.Auth = append(info.Auth, CredentialJWT.String())
		}
	}
	return info
}
