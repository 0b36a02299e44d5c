package proxy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// forwardedPath returns the path fasthttp sends upstream for a request
// target, the way the proxy forwards it (raw path, no normalizing); ok is
// false for a target fasthttp cannot parse (its server answers those 400
// before the handler runs).
func forwardedPath(target string) (path string, ok bool) {
	var u fasthttp.URI
	if err := u.Parse(nil, []byte(target)); err != nil {
		return "", false
	}
	var req fasthttp.Request
	req.Header.SetRequestURI(target)
	req.URI().DisablePathNormalizing = true
	p := string(req.URI().RequestURI())
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return p, true
}

// TestSplitTargetMatchesForwardedPath: the path the rules check is the path
// the upstream receives (SPEC §5 Paths), for targets that split differently
// in naive parsers (a regression test for "http://h#/healthz", which was
// checked as /healthz and forwarded as /).
func TestSplitTargetMatchesForwardedPath(t *testing.T) {
	for _, target := range []string{
		"/a/b?x", "http://h/a/b?q", "http://h?x",
		"HTTP://h:80/api/x", "http://h", "http://user@h/a", "http://h/%2e%2e/x",
	} {
		p, _, ok := splitTarget([]byte(target))
		if !ok {
			t.Errorf("splitTarget(%q) not ok", target)
			continue
		}
		if got, _ := forwardedPath(target); got != string(p) {
			t.Errorf("splitTarget(%q) path = %q, but fasthttp forwards %q", target, p, got)
		}
	}
}

func TestSplitTarget(t *testing.T) {
	cases := []struct {
		in          string
		path, query string
		ok          bool
	}{
		{"/a/b?x=1", "/a/b", "x=1", true},
		{"/a/b", "/a/b", "", true},
		{"/a?", "/a", "", true},
		// A '#' anywhere is refused: a request target has no fragment, and
		// a forwarded URI with one would be checked as one path and read
		// as another by an upstream that does not cut at '#'.
		{"/a#frag", "", "", false},
		{"/api/public/x#/../../private/x", "", "", false},
		{"/a?q#x", "", "", false},
		{"http://h/a/b?q", "/a/b", "q", true},
		{"HTTPS://h:8443/a", "/a", "", true},
		{"http://h", "/", "", true},
		{"http://h?q=1", "/", "q=1", true},
		{"http://h?q=1#/x", "", "", false},
		{"http://h#/healthz", "", "", false},
		{"http://h/a#/b", "", "", false},
		{"*", "", "", false},
		{"a/b", "", "", false},
		{"", "", "", false},
		{"//a", "//a", "", true}, // screened later as path_invalid
	}
	for _, c := range cases {
		p, q, ok := splitTarget([]byte(c.in))
		if ok != c.ok || string(p) != c.path || string(q) != c.query {
			t.Errorf("splitTarget(%q) = %q, %q, %v, want %q, %q, %v", c.in, p, q, ok, c.path, c.query, c.ok)
		}
	}
}

// FuzzSplitTarget: a split path starts with '/', holds no '?' or '#', and
// (for origin-form targets) path + "?" + query is a prefix of the input.
func FuzzSplitTarget(f *testing.F) {
	for _, s := range []string{"/a?b", "http://h/x?y#z", "*", "/%2e%2e/", "https://h", "/a#b?c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, q, ok := splitTarget([]byte(s))
		if !ok {
			return
		}
		if len(p) == 0 || p[0] != '/' || bytes.ContainsAny(p, "?#") {
			t.Fatalf("splitTarget(%q) path %q", s, p)
		}
		if s[0] == '/' && !bytes.HasPrefix([]byte(s), p) {
			t.Fatalf("splitTarget(%q) path %q is not a prefix", s, p)
		}
		// Paths with empty or dot segments never reach the upstream (they
		// are screened as path_invalid), so only the others are compared.
		// Targets with control characters or spaces never reach the handler
		// (fasthttp answers 400).
		if printableASCII(s) && !bytes.Contains(p, []byte("//")) && !bytes.Contains(p, []byte("/.")) {
			if got, ok := forwardedPath(s); ok && got != string(p) {
				t.Fatalf("splitTarget(%q) path = %q, but fasthttp forwards %q", s, p, got)
			}
		}
		_ = q
	})
}

// printableASCII reports whether s holds only visible ASCII characters.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func TestAuthMode(t *testing.T) {
	p := &Proxy{authPath: "/_auth", envoyPath: "/_auth/envoy"}
	for in, want := range map[string]authMode{
		"/_auth": modeAuth, "/_auth/envoy": modeEnvoy, "/_auth/envoy/api/x": modeEnvoy,
		"/_auth/envoyx": modeOther, "/_auth/": modeOther, "/_authx": modeProxy, "/api": modeProxy, "/_aut": modeProxy,
	} {
		if got := p.authMode([]byte(in)); got != want {
			t.Errorf("authMode(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestCanonicalHeaderName(t *testing.T) {
	for in, want := range map[string]string{
		"X-Auth-":      "X-Auth-",
		"x-auth-":      "X-Auth-",
		"X-AUTH-":      "X-Auth-",
		"x-user--":     "X-User--",
		"ident_":       "Ident_",
		"X-Auth-Scope": "X-Auth-Scope",
	} {
		if got := canonicalHeaderName(in); got != want {
			t.Errorf("canonicalHeaderName(%q) = %q, want %q", in, got, want)
		}
	}
}
