package policy

import (
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, method, path string
		want               bool
	}{
		{"/api/**", "GET", "/api", true},
		{"/api/**", "GET", "/api/", true},
		{"/api/**", "GET", "/api/a/b", true},
		{"/api/**", "GET", "/apix", false},
		{"/api/**", "GET", "/", false},
		{"/api/*", "GET", "/api/orders", true},
		{"/api/*", "GET", "/api/orders/1", false},
		{"/api/*", "GET", "/api", false},
		{"/api/*.json", "GET", "/api/a.json", true},
		{"/api/*.json", "GET", "/api/a.xml", false},
		{"/api/v*/x", "GET", "/api/v2/x", true},
		{"/a/**/z", "GET", "/a/z", true},
		{"/a/**/z", "GET", "/a/b/c/z", true},
		{"/a/**/z", "GET", "/a/b/c/y", false},
		{"/**/z/**/y", "GET", "/a/z/b/z/c/y", true},
		{"/**", "GET", "/", true},
		{"/", "GET", "/", true},
		{"/", "GET", "/a", false},
		{"GET /api/orders/*", "GET", "/api/orders/7", true},
		{"GET /api/orders/*", "POST", "/api/orders/7", false},
		{"GET /api/orders/*", "HEAD", "/api/orders/7", true},
		{"HEAD /api/orders/*", "GET", "/api/orders/7", false},
		{"POST /api/orders/*", "HEAD", "/api/orders/7", false},
		{"GET,POST /api/**", "POST", "/api/x", true},
		{"GET,POST /api/**", "DELETE", "/api/x", false},
		{"/Api", "GET", "/api", false},
	}
	for _, tt := range tests {
		t.Run(tt.glob+" "+tt.method+" "+tt.path, func(t *testing.T) {
			g, err := compileGlob(tt.glob, false)
			if err != nil {
				t.Fatalf("compileGlob(%q): %v", tt.glob, err)
			}
			if got := g.match(tt.method, tt.path, nil); got != tt.want {
				t.Errorf("match(%s %s) = %v, want %v", tt.method, tt.path, got, tt.want)
			}
			// The production entry point (routes, allowed_paths) agrees.
			var x globIndex
			x.add(g)
			if got := x.first(tt.method, tt.path, nil) == 0; got != tt.want {
				t.Errorf("globIndex.first(%s %s) matched = %v, want %v", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestCompileGlobErrors(t *testing.T) {
	for _, s := range []string{"", "api", "get /api", "GET", "/a//b", "/a/../b", "/a/./b", "/a**", "/a/**b", "/{x}", "/a{b", "GET;POST /x", strings.Repeat("/a", 1100)} {
		t.Run(s, func(t *testing.T) {
			g, err := compileGlob(s, false)
			if err == nil {
				t.Fatalf("compileGlob(%q) = nil error", s)
			}
			if g.match("GET", "/a", nil) {
				t.Error("malformed glob matched")
			}
		})
	}
}

func TestRouteGlobCaptures(t *testing.T) {
	segs, err := compileSegments("/c/{company}/s/{site}/**", true)
	if err != nil {
		t.Fatal(err)
	}
	segs[1].slot, segs[3].slot = slotCompany, slotSite
	var caps captures
	if !matchSegments(segs, "/c/acme/s/paris/x/y", &caps) {
		t.Fatal("no match")
	}
	if caps[slotCompany] != "acme" || caps[slotSite] != "paris" {
		t.Errorf("captures = %q", caps)
	}
	if matchSegments(segs, "/c//s/paris", &caps) {
		t.Error("placeholder matched an empty segment")
	}
}

// naiveMatch is a reference matcher: plain recursion over segments.
func naiveMatch(segs []segment, parts []string) bool {
	if len(segs) == 0 {
		return len(parts) == 0
	}
	if segs[0].kind == segDeep {
		for i := 0; i <= len(parts); i++ {
			if naiveMatch(segs[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	return len(parts) > 0 && matchSegment(&segs[0], parts[0]) && naiveMatch(segs[1:], parts[1:])
}

// FuzzGlob compiles arbitrary globs and compares the matcher with the naive
// reference on short inputs.
func FuzzGlob(f *testing.F) {
	// Seed corpus: method prefixes, deep and in-segment wildcards, placeholders.
	f.Add("/api/**", "/api/a/b")
	f.Add("GET,POST /api/*", "/api/x")
	f.Add("/**/a/**/b", "/x/a/y/a/b")
	f.Add("/*.json", "/a.json")
	f.Add("/a/{id}/**", "/a/1/")
	f.Add("/**/**/**", "/a/b/c/d/e/f")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		g, err := compileGlob(pattern, true)
		if err != nil || len(path) > 256 || len(pattern) > 256 || path == "" || path[0] != '/' {
			return
		}
		lp := newLitPrefix(g.prefix)
		if lp.prefixOf(path) != strings.HasPrefix(path, g.prefix) {
			t.Fatalf("litPrefix(%q).prefixOf(%q) disagrees with strings.HasPrefix", g.prefix, path)
		}
		got := matchSegments(g.segs, path, nil)
		g.methods = nil
		if fast := g.match("GET", path, nil); fast != got {
			t.Fatalf("glob %q on %q: prefix path %v, full walk %v", pattern, path, fast, got)
		}
		deep := 0
		for _, s := range g.segs {
			if s.kind == segDeep {
				deep++
			}
		}
		if deep > 3 || len(path) > 64 {
			return // the naive reference is exponential in "**"
		}
		if want := naiveMatch(g.segs, strings.Split(path[1:], "/")); got != want {
			t.Fatalf("glob %q on %q: got %v, naive %v", pattern, path, got, want)
		}
	})
}

func TestLitPrefix(t *testing.T) {
	for _, tt := range []struct {
		prefix, path string
		want         bool
	}{
		{"/", "/a", true},
		{"/api", "/api/x", true},
		{"/api/v1/area3", "/api/v1/area3/x", true},
		{"/api/v1/area3", "/api/v1/area4/x", false},
		{"/api/v1/area3", "/xpi/v1/area3/x", false},
		{"/api/v1/area3", "/api/v1/area", false},
		{"/abcdefgh", "/abcdefgh", true},
	} {
		lp := newLitPrefix(tt.prefix)
		if got := lp.prefixOf(tt.path); got != tt.want {
			t.Errorf("prefixOf(%q, %q) = %v, want %v", tt.prefix, tt.path, got, tt.want)
		}
	}
}

// TestLitPrefixEveryByte: for prefixes of every length around the 8- and
// 16-byte word boundaries, a path that differs from the prefix in any one
// byte, or is shorter, is rejected, and every extension is accepted.
func TestLitPrefixEveryByte(t *testing.T) {
	const src = "/abcdefghijklmnopqrstuvwxyz0123456789"
	for n := 0; n <= 26; n++ {
		prefix := src[:n]
		lp := newLitPrefix(prefix)
		for _, ext := range []string{"", "/", "/x/y/z/long-enough"} {
			if p := prefix + ext; !lp.prefixOf(p) {
				t.Errorf("prefixOf(%q, %q) = false", prefix, p)
			}
		}
		for i := 0; i < n; i++ {
			b := []byte(prefix + "/rest/of/the/path")
			b[i] ^= 0x20
			if lp.prefixOf(string(b)) {
				t.Errorf("prefixOf(%q, %q) = true, byte %d differs", prefix, b, i)
			}
		}
		if n > 0 && lp.prefixOf(prefix[:n-1]) {
			t.Errorf("prefixOf(%q, %q) = true for a shorter path", prefix, prefix[:n-1])
		}
	}
}

// match is the single-glob reference the tests compare globIndex with: the
// prefix by strings.HasPrefix, then the method, then the rest of the path.
func (g *glob) match(method, path string, caps *captures) bool {
	if !strings.HasPrefix(path, g.prefix) || !g.methodOK(method) {
		return false
	}
	return g.matchAfterPrefix(path, caps)
}

// matchSegments matches a path (starting with "/") against segs from the
// first segment: the full walk, without the literal-prefix shortcut.
func matchSegments(segs []segment, path string, caps *captures) bool {
	return matchSegmentsFrom(segs, 0, path, 0, caps)
}
