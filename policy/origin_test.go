package policy

import (
	"strings"
	"testing"
)

func TestOriginMatch(t *testing.T) {
	tests := []struct {
		pattern, origin string
		want            bool
	}{
		{"*", "https://x.example", true},
		{"*", "null", true},
		{"https://app.example.com", "https://app.example.com", true},
		{"https://app.example.com", "https://APP.example.com", true},
		{"https://app.example.com", "HTTPS://app.example.com", true},
		{"https://app.example.com", "https://app.example.com:443", true},
		{"https://app.example.com:443", "https://app.example.com", true},
		{"https://app.example.com", "https://app.example.com:8443", false},
		{"https://app.example.com", "http://app.example.com", false},
		{"http://app.example.com", "http://app.example.com:80", true},
		{"https://app.example.com", "https://evil-app.example.com", false},
		{"https://app.example.com", "https://app.example.com.evil", false},
		{"https://app.example.com", "https://app.example.com/", false},
		{"https://app.example.com", "null", false},
		{"https://*.example.com", "https://a.example.com", true},
		{"https://*.example.com", "https://a.b.example.com", true},
		{"https://*.example.com", "https://example.com", false},
		{"https://*.example.com", "https://.example.com", false},
		{"https://*.example.com", "https://a..example.com", false},
		{"https://*.example.com", "https://aexample.com", false},
		{"https://*.example.com", "https://a.example.com:8443", false},
		{"https://*.example.com:8443", "https://a.example.com:8443", true},
		{"https://*.example.com:8443", "https://a.example.com", false},
		{"http://[::1]:8080", "http://[::1]:8080", true},
		{"http://localhost:3000", "http://localhost:3000", true},
		// Brackets outside a bracketed host never reach the wildcard labels.
		{"https://*.example.com", "https://a[.example.com", false},
		{"https://*.example.com", "https://a].example.com", false},
		{"https://*.example.com", "https://[a].example.com", false},
		// The longest accepted entries match themselves, with the default
		// port written or not; a longer Origin never matches an exact entry.
		{longOrigin(maxOriginPattern), longOrigin(maxOriginPattern), true},
		{longOrigin(maxOriginPattern-4) + ":443", longOrigin(maxOriginPattern - 4), true},
		{longOrigin(maxOriginPattern - 4), longOrigin(maxOriginPattern-4) + ":443", true},
		{longOrigin(maxOriginPattern), longOrigin(maxOriginPattern) + "a", false},
		{longOrigin(maxOriginPattern), longOrigin(600), false},
		{"https://*.example.com", "https://" + strings.Repeat("a.", 300) + "example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.origin, func(t *testing.T) {
			s := compileSet(t, tt.pattern)
			if got := s.match(tt.origin); got != tt.want {
				t.Errorf("match(%q) = %v, want %v", tt.origin, got, tt.want)
			}
		})
	}
}

// compileSet compiles patterns into an originSet as CompileClient does.
func compileSet(t *testing.T, patterns ...string) *originSet {
	t.Helper()
	var s originSet
	for _, p := range patterns {
		o, err := compileOrigin(p)
		if err != nil {
			t.Fatalf("compileOrigin(%q): %v", p, err)
		}
		s.add(o)
	}
	return &s
}

// longOrigin returns an https origin of n bytes.
func longOrigin(n int) string {
	return "https://" + strings.Repeat("a", n-len("https://.example")) + ".example"
}

// TestOriginBracketsRejected shows that splitOrigin rejects brackets outside a
// bracketed host, so wildcard labels never hold one.
func TestOriginBracketsRejected(t *testing.T) {
	for _, s := range []string{"https://a[.example.com", "https://a].example.com", "https://[a].example.com", "https://[a.example.com", "https://a[b]:443",
		"A://[[]", "https://[a]", "https://[1.2.3.4]", "https://[fe80::1%25eth0]", "https://[]"} {
		if ro, ok := parseRequestOrigin(s); ok {
			t.Errorf("parseRequestOrigin(%q) = %+v, want rejected", s, ro)
		}
	}
}

func TestCompileOriginErrors(t *testing.T) {
	for _, s := range []string{"", "example.com", "https://", "https://a.com/", "https://a.com:0", "https://a.com:99999", "https://*.", "https://a.*.com", "https://*", "https://u@a.com", "**"} {
		t.Run(s, func(t *testing.T) {
			if _, err := compileOrigin(s); err == nil {
				t.Errorf("compileOrigin(%q) = nil error", s)
			}
		})
	}
}

// FuzzOriginPattern checks that patterns compile or fail cleanly, that an
// exact pattern matches itself, and that a parsed Origin holds brackets only around a bracketed host.
func FuzzOriginPattern(f *testing.F) {
	// Seed corpus: exact, default port, wildcard, IPv6, star.
	for _, s := range []string{"https://app.example.com", "https://app.example.com:443", "https://*.example.com", "http://[::1]:8080", "*", "null"} {
		f.Add(s, s)
	}
	f.Add("https://*.example.com", "https://a.b.example.com")
	f.Add("A://[[]", "A://[[]") // a fuzz find: a bracketed host that is no IPv6 literal
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		if ro, ok := parseRequestOrigin(origin); ok && strings.ContainsAny(ro.host, "[]") {
			if h := ro.host; h[0] != '[' || strings.IndexByte(h, ']') != len(h)-1 || strings.IndexByte(h[1:], '[') >= 0 {
				t.Fatalf("parseRequestOrigin(%q) host %q has brackets outside a bracketed host", origin, h)
			}
		}
		o, err := compileOrigin(pattern)
		if err != nil {
			return
		}
		var s originSet
		s.add(o)
		_ = s.match(origin)
		if p := strings.TrimSpace(pattern); !o.wildcard && !o.any && !s.match(p) {
			t.Fatalf("exact pattern %q (%d bytes) does not match itself", pattern, len(p))
		}
	})
}
