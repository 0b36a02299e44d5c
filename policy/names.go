package policy

import "strings"

// Header names and query keys as upstreams read them. A scope read from a
// header or a query parameter (SPEC §4) is ambiguous when the request holds
// another field an upstream framework reads under the same name: the
// proxy counts those as copies, and a repeated scope value is scope_unknown.

// ForwardedHeaderName reports whether a header named name reaches an
// upstream: the proxy drops every name holding '_' (a CGI-style server
// reads X_Site_Key as X-Site-Key), as nginx does by default. A scope header
// or an API key header must be such a name.
func ForwardedHeaderName(name string) bool {
	return strings.IndexByte(name, '_') < 0
}

// HasHeaderPrefix reports whether name starts with prefix, ignoring ASCII
// case and reading '_' as '-'.
func HasHeaderPrefix(name, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if foldHeaderByte(name[i]) != foldHeaderByte(prefix[i]) {
			return false
		}
	}
	return true
}

// IdentityHeaderSpoof reports whether a request field named name passes
// for an identity header under prefix (SPEC's identity_header_sent): it
// holds '_', so a CGI-style server reads it with '-', and so read it starts
// with prefix. A proxy that cannot remove such a field from what reaches the
// upstream (forward-auth) refuses the request; one that can drops it.
func IdentityHeaderSpoof(name, prefix string) bool {
	return prefix != "" && !ForwardedHeaderName(name) && HasHeaderPrefix(name, prefix)
}

// SameHeaderName reports whether a header named k is read as name: ASCII
// case ignored, '_' read as '-'.
func SameHeaderName(k, name string) bool {
	return len(k) == len(name) && HasHeaderPrefix(k, name)
}

func foldHeaderByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_':
		return '-'
	}
	return c
}

// SameQueryKey reports whether a query key k is read as name by some
// upstream framework: ASCII case ignored (ASP.NET), leading spaces dropped,
// '.' or ' ' read as '_' and everything from a NUL on ignored (PHP, which
// reads the name as a C string), and a "[...]" suffix making it an array of
// name (PHP, Rails, qs). It does not allocate.
func SameQueryKey(k, name string) bool {
	if i := strings.IndexByte(k, 0); i >= 0 {
		k = k[:i]
	}
	k = strings.TrimLeft(k, " ")
	if i := strings.IndexByte(k, '['); i > 0 {
		k = k[:i]
	}
	if len(k) != len(name) {
		return false
	}
	for i := 0; i < len(k); i++ {
		if foldQueryByte(k[i]) != foldQueryByte(name[i]) {
			return false
		}
	}
	return true
}

func foldQueryByte(c byte) byte {
	switch {
	case c == ' ' || c == '.':
		return '_'
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	}
	return c
}
