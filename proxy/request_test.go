package proxy

import (
	"bytes"
	"testing"
)

func TestSplitTarget(t *testing.T) {
	cases := []struct {
		in          string
		path, query string
		ok          bool
	}{
		{"/a/b?x=1", "/a/b", "x=1", true},
		{"/a/b", "/a/b", "", true},
		{"/a?", "/a", "", true},
		{"/a#frag", "/a", "", true},
		{"http://h/a/b?q", "/a/b", "q", true},
		{"HTTPS://h:8443/a", "/a", "", true},
		{"http://h", "/", "", true},
		{"http://h?q=1", "/", "q=1", true},
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
		_ = q
	})
}

func TestHasIdentityPrefix(t *testing.T) {
	for in, want := range map[string]bool{
		"X-Auth-Type": true, "x-auth-type": true, "X_Auth_Type": true, "X-AUTH-": true,
		"X-Auth": false, "X-Authorization": false, "Authorization": false, "X-Auth_": true,
	} {
		if got := hasIdentityPrefix([]byte(in), "X-Auth-"); got != want {
			t.Errorf("hasIdentityPrefix(%q) = %v, want %v", in, got, want)
		}
	}
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
