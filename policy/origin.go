package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Origin patterns (SPEC §3 allowed_origins):
//
//   - "*" matches any Origin;
//   - "https://app.example.com" matches that origin exactly, scheme and host
//     compared case-insensitively; an explicit default port is the same origin
//     ("https://app.example.com:443");
//   - "https://*.example.com" matches one or more labels in front of
//     "example.com" (not "example.com" itself). A port in the pattern must
//     match exactly; none means the scheme's default port.
//
// A request Origin that is not "scheme://host[:port]" (such as "null") matches
// only "*".
type originPattern struct {
	any      bool
	wildcard bool   // host is a suffix after "*."
	scheme   string // lower case
	host     string // lower case; for wildcards the part after "*."
	port     string // explicit or the scheme's default; "" when neither
}

var errOriginSyntax = errors.New(`not "*" or scheme://host[:port]`)

// maxOriginPattern bounds an allowed_origins entry. No browser sends a
// longer Origin (a DNS name is at most 253 bytes), and the bound keeps every
// exact entry's key short enough for [originSet.match]'s stack buffer, so an
// accepted entry always matches itself.
const maxOriginPattern = 320

var errOriginTooLong = fmt.Errorf("longer than %d bytes (a DNS name is at most 253)", maxOriginPattern)

// compileOrigin compiles an allowed_origins entry.
func compileOrigin(src string) (originPattern, error) {
	s := strings.TrimSpace(src)
	if s == "*" {
		return originPattern{any: true}, nil
	}
	if len(s) > maxOriginPattern {
		return originPattern{}, errOriginTooLong
	}
	scheme, host, port, ok := splitOrigin(s)
	if !ok {
		return originPattern{}, errOriginSyntax
	}
	o := originPattern{scheme: strings.ToLower(scheme), host: strings.ToLower(host)}
	if port == "" {
		port = defaultPort(o.scheme)
	}
	o.port = strings.TrimLeft(port, "0")
	if strings.HasPrefix(o.host, "*.") {
		o.wildcard = true
		o.host = o.host[2:]
		if o.host == "" || o.host[0] == '.' {
			return originPattern{}, errOriginSyntax
		}
	}
	if strings.Contains(o.host, "*") {
		return originPattern{}, errOriginSyntax
	}
	return o, nil
}

// defaultPort returns the default port of http and https, else "".
func defaultPort(scheme string) string {
	switch {
	case strings.EqualFold(scheme, "https"):
		return "443"
	case strings.EqualFold(scheme, "http"):
		return "80"
	}
	return ""
}

// splitOrigin splits "scheme://host[:port]". It rejects paths, queries,
// fragments, user info, empty hosts and bad ports. It does not allocate.
func splitOrigin(s string) (scheme, host, port string, ok bool) {
	i := strings.Index(s, "://")
	if i <= 0 || len(s) > 1024 {
		return "", "", "", false
	}
	scheme = s[:i]
	for j := 0; j < len(scheme); j++ {
		c := scheme[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", "", "", false
		}
	}
	hp := s[i+3:]
	if hp == "" || hasOriginStop(hp) {
		return "", "", "", false
	}
	host = hp
	if hp[0] == '[' {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", "", false
		}
		host = hp[:end+1]
		// A bracketed host is an IPv6 literal (RFC 3986 §3.2.2), without a
		// zone: "[[]" or "[a]" is not a host.
		if a, err := netip.ParseAddr(hp[1:end]); err != nil || !a.Is6() || a.Zone() != "" {
			return "", "", "", false
		}
		rest := hp[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return "", "", "", false
			}
			port = rest[1:]
			if !validPort(port) {
				return "", "", "", false
			}
		}
		return scheme, host, port, true
	}
	if c := strings.LastIndexByte(hp, ':'); c >= 0 {
		host, port = hp[:c], hp[c+1:]
		if !validPort(port) || strings.IndexByte(host, ':') >= 0 {
			return "", "", "", false
		}
	}
	if host == "" || strings.IndexByte(host, '[') >= 0 || strings.IndexByte(host, ']') >= 0 {
		return "", "", "", false
	}
	return scheme, host, port, true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n <= 65535
}

// requestOrigin is a parsed Origin header.
type requestOrigin struct {
	scheme, host, port string // port defaulted from the scheme
}

// parseRequestOrigin parses an Origin header once for all patterns. It does
// not allocate.
func parseRequestOrigin(origin string) (requestOrigin, bool) {
	scheme, host, port, ok := splitOrigin(origin)
	if !ok {
		return requestOrigin{}, false
	}
	if port == "" {
		port = defaultPort(scheme)
	}
	return requestOrigin{scheme, host, strings.TrimLeft(port, "0")}, true
}

// matchParsed matches a parsed, well-formed Origin against a wildcard
// pattern; "*" and exact origins are matched by [originSet.match].
func (o *originPattern) matchParsed(ro *requestOrigin) bool {
	host := ro.host
	if ro.port != o.port || !strings.EqualFold(ro.scheme, o.scheme) {
		return false
	}
	// One or more non-empty labels, then "." and the suffix. splitOrigin
	// keeps brackets out of the labels: a bracketed host ends in "]", which
	// no suffix does.
	n := len(host) - len(o.host)
	if n < 2 || host[n-1] != '.' || !strings.EqualFold(host[n:], o.host) {
		return false
	}
	labels := host[:n-1]
	return labels[0] != '.' && labels[len(labels)-1] != '.' && !strings.Contains(labels, "..")
}

// originStop marks bytes that cannot appear in an origin's host and port:
// delimiters, controls, space and non-ASCII (browsers send IDNs as punycode,
// and ASCII keeps case folding exact).
var originStop = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c <= ' ' || c >= 0x7f
	}
	for _, c := range "/?#@\\" {
		t[c] = true
	}
	return t
}()

func hasOriginStop(s string) bool {
	for i := 0; i < len(s); i++ {
		if originStop[s[i]] {
			return true
		}
	}
	return false
}

// originSet is a compiled allowed_origins list: "*", exact origins in a map
// keyed by their normalised form, and wildcard patterns.
type originSet struct {
	any   bool
	exact map[string]struct{}
	wild  []originPattern
}

func (s *originSet) add(o originPattern) {
	switch {
	case o.any:
		s.any = true
	case o.wildcard:
		s.wild = append(s.wild, o)
	default:
		if s.exact == nil {
			s.exact = make(map[string]struct{})
		}
		s.exact[string(appendOriginKey(nil, o.scheme, o.host, o.port))] = struct{}{}
	}
}

// maxOriginKey bounds the normalised key built on the stack: an exact
// entry's key (at most maxOriginPattern bytes plus a default port) always
// fits.
const maxOriginKey = 512

// An exact entry's key is at most maxOriginPattern bytes plus a default port
// (":65535" at most); this fails to compile if it could reach the
// maxOriginKey-8 bytes past which originSet.match skips the exact lookup.
var _ [maxOriginKey - 8 - maxOriginPattern - len(":65535") - 1]struct{}

// match reports whether the request Origin is in the set. It does not
// allocate. An Origin of maxOriginKey-8 bytes or more is not looked up among
// the exact origins: no exact entry is that long.
func (s *originSet) match(origin string) bool {
	if s.any {
		return true
	}
	ro, ok := parseRequestOrigin(origin)
	if !ok {
		return false
	}
	if len(s.exact) > 0 && len(origin) < maxOriginKey-8 {
		var buf [maxOriginKey]byte
		if _, hit := s.exact[string(appendOriginKey(buf[:0], ro.scheme, ro.host, ro.port))]; hit {
			return true
		}
	}
	for i := range s.wild {
		if s.wild[i].matchParsed(&ro) {
			return true
		}
	}
	return false
}

// appendOriginKey appends "scheme://host:port" in lower case with the port's
// leading zeros dropped.
func appendOriginKey(b []byte, scheme, host, port string) []byte {
	b = appendLower(b, scheme)
	b = append(b, "://"...)
	b = appendLower(b, host)
	b = append(b, ':')
	return append(b, port...) // ports are normalised without leading zeros
}

func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}
