package policy

import (
	"errors"
	"strings"
)

// Path globs (SPEC §3 allowed_paths, §4 route paths).
//
// A glob is an optional comma-separated method list, a space, and a path
// pattern that starts with "/". Segments are matched against the decoded
// path split at "/":
//
//   - "**" (a whole segment) matches zero or more segments, so "/api/**"
//     matches "/api", "/api/" and "/api/a/b";
//   - "*" matches any text within one segment, also as part of a segment
//     ("*.json", "v*");
//   - "{name}" (route paths only) matches exactly one non-empty segment and
//     captures it;
//   - anything else matches the segment literally (case-sensitive).
//
// Matching runs in O(len(pattern)·len(path)) without backtracking blow-up and
// does not allocate.

type segKind uint8

const (
	segLiteral segKind = iota
	segAny             // "*": any text within one segment
	segWild            // a segment with "*" inside ("*.json")
	segDeep            // "**": zero or more segments
	segParam           // "{name}": one non-empty segment, captured
)

type segment struct {
	kind segKind
	text string // literal or wildcard text; placeholder name for segParam
	slot int8   // capture slot for segParam, -1 when not captured
}

// maxCaptures is the number of placeholder values a route can hand to the
// scope check: the scope placeholder, {company} and {site}.
const maxCaptures = 3

// captures holds placeholder values of one match; they alias the path.
type captures [maxCaptures]string

// glob is a compiled path glob (compileGlob); globIndex matches it.
type glob struct {
	methods []string // upper-case; empty: every method
	segs    []segment
	src     string
	// prefix is the literal text every matching path starts with ("/api/v1"
	// for "/api/v1/*/x"), a cheap pre-filter before segment matching; nLit
	// is the number of leading literal segments it covers, and deepTail
	// reports that the only segment after them is "**".
	prefix   string
	nLit     int
	deepTail bool
}

var (
	errGlobEmpty     = errors.New("empty glob")
	errGlobSlash     = errors.New(`path must start with "/"`)
	errGlobMethod    = errors.New("bad method list")
	errGlobEmptySeg  = errors.New(`empty segment ("//")`)
	errGlobDot       = errors.New(`"." or ".." segment`)
	errGlobDeep      = errors.New(`"**" must be a whole segment`)
	errGlobBrace     = errors.New(`"{" or "}" outside a whole-segment placeholder`)
	errGlobParamName = errors.New("bad placeholder name")
	errGlobParamDup  = errors.New("duplicate placeholder")
	errGlobTooLong   = errors.New("glob longer than 2048 bytes")
)

// compileGlob compiles an allowed_paths entry or, with params, a route path.
func compileGlob(src string, params bool) (glob, error) {
	g := glob{src: src}
	s := strings.TrimSpace(src)
	if s == "" {
		return g, errGlobEmpty
	}
	if len(s) > 2048 {
		return g, errGlobTooLong
	}
	if s[0] != '/' {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return g, errGlobSlash
		}
		ms := s[:i]
		s = strings.TrimSpace(s[i:])
		for _, m := range strings.Split(ms, ",") {
			if !validMethod(m) {
				return g, errGlobMethod
			}
			g.methods = append(g.methods, m)
		}
	}
	segs, err := compileSegments(s, params)
	if err != nil {
		return g, err
	}
	g.segs = segs
	g.setPrefix()
	return g, nil
}

// setPrefix fills prefix, nLit and deepTail from segs.
func (g *glob) setPrefix() {
	g.prefix = literalPrefix(g.segs)
	g.nLit = 0
	for g.nLit < len(g.segs) && g.segs[g.nLit].kind == segLiteral {
		g.nLit++
	}
	g.deepTail = len(g.segs) == g.nLit+1 && g.segs[g.nLit].kind == segDeep
}

// literalPrefix returns "/" plus the leading literal segments joined by "/".
// A trailing "**" may match zero segments, so no "/" follows the last one.
func literalPrefix(segs []segment) string {
	var b strings.Builder
	b.WriteByte('/')
	for i, s := range segs {
		if s.kind != segLiteral {
			break
		}
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(s.text)
	}
	return b.String()
}

// compileSegments compiles a path pattern.
func compileSegments(s string, params bool) ([]segment, error) {
	if s == "" || s[0] != '/' {
		return nil, errGlobSlash
	}
	rest := s[1:]
	parts := strings.Split(rest, "/")
	segs := make([]segment, 0, len(parts))
	var names []string
	for i, p := range parts {
		switch {
		case p == "" && i < len(parts)-1:
			return nil, errGlobEmptySeg
		case p == "." || p == "..":
			return nil, errGlobDot
		case p == "**":
			segs = append(segs, segment{kind: segDeep, slot: -1})
		case strings.Contains(p, "**"):
			return nil, errGlobDeep
		case len(p) >= 2 && p[0] == '{' && p[len(p)-1] == '}':
			name := p[1 : len(p)-1]
			if !params || !validName(name) {
				if !params {
					return nil, errGlobBrace
				}
				return nil, errGlobParamName
			}
			for _, n := range names {
				if n == name {
					return nil, errGlobParamDup
				}
			}
			names = append(names, name)
			segs = append(segs, segment{kind: segParam, text: name, slot: -1})
		case strings.ContainsAny(p, "{}"):
			return nil, errGlobBrace
		case p == "*":
			segs = append(segs, segment{kind: segAny, slot: -1})
		case strings.Contains(p, "*"):
			segs = append(segs, segment{kind: segWild, text: p, slot: -1})
		default:
			segs = append(segs, segment{kind: segLiteral, text: p, slot: -1})
		}
	}
	return segs, nil
}

// validMethod reports whether m is an upper-case HTTP method token.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if (c < 'A' || c > 'Z') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// validName reports whether s is a placeholder or header-free identifier.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// methodOK reports whether the glob's method list admits method. A list
// with GET admits HEAD too: HEAD is GET without the content (RFC 9110
// §9.3.2), and nginx's limit_except GET admits it the same way.
func (g *glob) methodOK(method string) bool {
	if len(g.methods) == 0 {
		return true
	}
	for _, m := range g.methods {
		if m == method || (m == "GET" && method == "HEAD") {
			return true
		}
	}
	return false
}

// globIndex is an ordered list of compiled globs (route patterns, or a
// client's allowed_paths) with their literal prefixes in a slice of their
// own, so that rejecting a path is a tight loop over the prefixes and only
// the globs whose prefix matches are walked.
type globIndex struct {
	prefixes []litPrefix // globs[i].prefix
	globs    []glob
}

// add appends g.
func (x *globIndex) add(g glob) {
	x.prefixes = append(x.prefixes, newLitPrefix(g.prefix))
	x.globs = append(x.globs, g)
}

// first returns the index of the first glob that admits method and the
// decoded path, or -1. caps (when not nil) holds that glob's captures, and
// is zero when none matched. It does not allocate.
func (x *globIndex) first(method, path string, caps *captures) int {
	for i := range x.prefixes {
		if !x.prefixes[i].prefixOf(path) {
			continue
		}
		if caps != nil {
			*caps = captures{}
		}
		if g := &x.globs[i]; g.methodOK(method) && g.matchAfterPrefix(path, caps) {
			return i
		}
	}
	if caps != nil {
		*caps = captures{}
	}
	return -1
}

// matchAfterPrefix matches a path already known to start with g.prefix:
// the literal segments are done, so matching resumes after them. Patterns
// that are all literal, or literal then one "**", need no segment walk.
func (g *glob) matchAfterPrefix(path string, caps *captures) bool {
	n := len(g.prefix)
	if g.nLit == 0 {
		return matchSegmentsFrom(g.segs, 0, path, 0, caps)
	}
	if len(path) > n && path[n] != '/' {
		return false // the last literal segment continues in the path
	}
	switch {
	case g.nLit == len(g.segs):
		return len(path) == n
	case g.deepTail:
		return true
	}
	// In path[1:], the next segment starts at n (or n is one past the end).
	return matchSegmentsFrom(g.segs, g.nLit, path, n, caps)
}

// matchSegmentsFrom matches from pattern segment pi and byte offset pos of
// path[1:]. "**" is handled like "*" in the classic greedy wildcard
// algorithm over segments: on a mismatch, the last "**" absorbs one more
// segment and matching resumes after it, which is O(len(segs)·segments) in
// the worst case.
func matchSegmentsFrom(segs []segment, pi int, path string, pos int, caps *captures) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	rest := path[1:]
	starPi, starPos := -1, 0
	for pos <= len(rest) {
		if pi < len(segs) && segs[pi].kind == segDeep {
			starPi, starPos = pi, pos
			pi++
			continue
		}
		end := pos
		for end < len(rest) && rest[end] != '/' { // segments are short: no IndexByte call
			end++
		}
		if pi < len(segs) && matchSegment(&segs[pi], rest[pos:end]) {
			if segs[pi].slot >= 0 && caps != nil {
				caps[segs[pi].slot] = rest[pos:end]
			}
			pi++
			pos = end + 1
			continue
		}
		if starPi < 0 || starPos > len(rest) {
			return false
		}
		// Let the last "**" absorb one more segment.
		if e := strings.IndexByte(rest[starPos:], '/'); e < 0 {
			starPos = len(rest) + 1
		} else {
			starPos += e + 1
		}
		pos = starPos
		pi = starPi + 1
	}
	for pi < len(segs) && segs[pi].kind == segDeep {
		pi++
	}
	return pi == len(segs)
}

func matchSegment(s *segment, text string) bool {
	switch s.kind {
	case segLiteral:
		return s.text == text
	case segAny:
		return true
	case segParam:
		return text != ""
	case segWild:
		return wildMatch(s.text, text)
	}
	return false
}

// wildMatch matches text against pattern p where "*" is any run of bytes.
// Greedy with single backtrack point: O(len(p)·len(text)).
func wildMatch(p, text string) bool {
	pi, ti := 0, 0
	star, mark := -1, 0
	for ti < len(text) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ti
			pi++
		case pi < len(p) && p[pi] == text[ti]:
			pi++
			ti++
		case star >= 0:
			mark++
			ti = mark
			pi = star + 1
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
