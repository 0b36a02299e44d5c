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
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.origin, func(t *testing.T) {
			o, err := compileOrigin(tt.pattern)
			if err != nil {
				t.Fatalf("compileOrigin(%q): %v", tt.pattern, err)
			}
			if got := o.match(tt.origin); got != tt.want {
				t.Errorf("match(%q) = %v, want %v", tt.origin, got, tt.want)
			}
		})
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

// FuzzOriginPattern checks that patterns compile or fail cleanly and that an
// exact pattern matches itself.
func FuzzOriginPattern(f *testing.F) {
	// Seed corpus: exact, default port, wildcard, IPv6, star.
	for _, s := range []string{"https://app.example.com", "https://app.example.com:443", "https://*.example.com", "http://[::1]:8080", "*", "null"} {
		f.Add(s, s)
	}
	f.Add("https://*.example.com", "https://a.b.example.com")
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		o, err := compileOrigin(pattern)
		if err != nil {
			return
		}
		_ = o.match(origin)
		if !o.wildcard && !o.any && !o.match(strings.TrimSpace(pattern)) {
			t.Fatalf("exact pattern %q does not match itself", pattern)
		}
	})
}
