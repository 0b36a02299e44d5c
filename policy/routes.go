package policy

import (
	"errors"
	"strings"
)

// Routes is a compiled routes file (SPEC §4). It is immutable and safe for
// concurrent use; reloads build a new one and swap it in with
// [Engine.SetRoutes].
type Routes struct {
	defaultAuthenticated bool
	actionByMethod       map[string]string
	superuser            []string
	rules                []route
	index                globIndex // rules[i].glob, in order, for matching
	cors                 *CORS     // the cors: block, nil when absent
}

// Len returns the number of route rules.
func (r *Routes) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

// Line returns the 1-based line of route i in the file, 0 when out of range.
func (r *Routes) Line(i int) int {
	if r == nil || i < 0 || i >= len(r.rules) {
		return 0
	}
	return r.rules[i].line
}

// Path returns the path pattern of route i as written, "" when out of range.
func (r *Routes) Path(i int) string {
	if r == nil || i < 0 || i >= len(r.rules) {
		return ""
	}
	return r.rules[i].path
}

// acceptMask is the set of credential kinds a route accepts.
type acceptMask uint8

const (
	acceptAPIKey acceptMask = 1 << iota
	acceptJWT
	acceptAll = acceptAPIKey | acceptJWT
)

// scopeSource is where a scope value comes from.
type scopeSource uint8

const (
	fromPath scopeSource = iota
	fromHeader
	fromQuery
)

// Capture slots: the scope placeholder when it is neither {company} nor
// {site}, then {company} and {site} for the belongs-to check.
const (
	slotScope   = 0
	slotCompany = 1
	slotSite    = 2
)

type scopeSpec struct {
	kind   scopeKind
	source scopeSource
	name   string // header or query parameter name, or placeholder name
	slot   int8   // capture slot for fromPath
}

// route is one compiled rule.
type route struct {
	line              int
	path              string
	glob              glob // methods and path pattern
	public            bool
	accept            acceptMask
	module            string
	action            string // "" : from action_by_method
	scope             scopeSpec
	allowEncodedSlash bool
	hasCompany        bool // path has {company}
	hasSite           bool // path has {site}
}

// defaultActionByMethod applies when the file has no action_by_method.
var defaultActionByMethod = map[string]string{
	"GET": "view", "HEAD": "view", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete",
}

// RoutesError is a problem in a routes file, with its 1-based line.
type RoutesError struct {
	Line int
	Msg  string
}

func (e RoutesError) Error() string { return "line " + itoa(e.Line) + ": " + e.Msg }

// compileScope parses a route's scope: "any", or "company:" / "site:"
// followed by "{name}", "header:NAME" or "query:NAME".
func compileScope(s string) (scopeSpec, error) {
	if s == "any" {
		return scopeSpec{kind: scopeAny, slot: -1}, nil
	}
	kind, src, ok := strings.Cut(s, ":")
	sp := scopeSpec{slot: -1}
	switch {
	case !ok:
		return sp, errors.New(`scope must be "any", company:... or site:...`)
	case kind == "company":
		sp.kind = scopeCompany
	case kind == "site":
		sp.kind = scopeSite
	default:
		return sp, errors.New(`scope kind must be company or site`)
	}
	switch {
	case len(src) >= 2 && src[0] == '{' && src[len(src)-1] == '}':
		sp.source, sp.name = fromPath, src[1:len(src)-1]
	case strings.HasPrefix(src, "header:"):
		sp.source, sp.name = fromHeader, src[len("header:"):]
	case strings.HasPrefix(src, "query:"):
		sp.source, sp.name = fromQuery, src[len("query:"):]
	default:
		return sp, errors.New(`scope value must be {placeholder}, header:NAME or query:NAME`)
	}
	if !validName(sp.name) {
		return sp, errors.New("bad scope name")
	}
	if sp.source == fromHeader && !ForwardedHeaderName(sp.name) {
		// The proxy drops every header name with an underscore before
		// forwarding (CGI-style servers read it as the dashed name), so the
		// upstream would never see the header the scope came from.
		return sp, errors.New("a scope header name must not contain '_' (such headers are never forwarded)")
	}
	return sp, nil
}

// assignSlots marks the captured placeholders of a route: {company},
// {site} and the scope placeholder. It reports whether the scope
// placeholder is in the path.
func (r *route) assignSlots() bool {
	found := r.scope.source != fromPath || r.scope.kind == scopeAny || r.scope.kind == scopeNone
	for i := range r.glob.segs {
		s := &r.glob.segs[i]
		if s.kind != segParam {
			continue
		}
		switch s.text {
		case "company":
			s.slot = slotCompany
			r.hasCompany = true
		case "site":
			s.slot = slotSite
			r.hasSite = true
		}
		if r.scope.source == fromPath && r.scope.kind >= scopeCompany && s.text == r.scope.name {
			if s.slot < 0 {
				s.slot = slotScope
			}
			r.scope.slot = s.slot
			found = true
		}
	}
	return found
}

// shadows reports whether every request that matches b also matches a
// (conservatively: false when unsure).
func shadows(a, b *route) bool {
	if len(a.glob.methods) > 0 {
		if len(b.glob.methods) == 0 {
			return false
		}
		for _, m := range b.glob.methods {
			if !a.glob.methodOK(m) {
				return false
			}
		}
	}
	if len(a.glob.segs) > 64 || len(b.glob.segs) > 64 {
		return false
	}
	memo := make(map[[2]int]bool)
	return covers(a.glob.segs, b.glob.segs, 0, 0, memo)
}

// covers reports whether pattern a matches every path pattern b matches.
func covers(a, b []segment, i, j int, memo map[[2]int]bool) bool {
	k := [2]int{i, j}
	if v, ok := memo[k]; ok {
		return v
	}
	var res bool
	switch {
	case i == len(a):
		res = j == len(b)
	case a[i].kind == segDeep:
		res = covers(a, b, i+1, j, memo) || (j < len(b) && covers(a, b, i, j+1, memo))
	case j == len(b):
		res = false
	case b[j].kind == segDeep:
		res = false
	default:
		res = segCovers(&a[i], &b[j]) && covers(a, b, i+1, j+1, memo)
	}
	memo[k] = res
	return res
}

func segCovers(a, b *segment) bool {
	switch a.kind {
	case segAny:
		return true
	case segParam:
		return b.kind == segParam || (b.kind == segLiteral && b.text != "") ||
			(b.kind == segWild && strings.Trim(b.text, "*") != "")
	case segLiteral:
		return b.kind == segLiteral && a.text == b.text
	case segWild:
		return (b.kind == segLiteral && wildMatch(a.text, b.text)) || (b.kind == segWild && a.text == b.text)
	}
	return false
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
