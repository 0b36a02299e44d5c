package policy

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScreenPath(t *testing.T) {
	tests := []struct {
		raw  string
		want pathDefect
	}{
		{"/", pathOK},
		{"/api/orders", pathOK},
		{"/api/orders/", pathOK},
		{"/api/a%20b", pathOK},
		{"/api/...", pathBad}, // ".." to Windows, which drops trailing dots
		{"/api/.well-known", pathOK},
		{"/api/%2e%2e%2e", pathBad},
		{"/api/a;v=1/b", pathOK},
		{"/api/a%3Bv=1", pathOK},
		{"/api/..;/admin", pathBad},
		{"/api/.;/admin", pathBad},
		{"/api/%2e%2e%3b/admin", pathBad},
		{"/api/..%3Bjsessionid=1", pathBad},
		{"/api/;jsessionid=1", pathBad},
		{"/caf%C3%A9", pathOK},
		// Bypass corpus.
		{"/api/../admin", pathBad},
		{"/api/./admin", pathBad},
		{"/api/..", pathBad},
		{"/api/.", pathBad},
		{"/..", pathBad},
		{"/api/%2e%2e/admin", pathBad},
		{"/api/%2E%2e/admin", pathBad},
		{"/api/.%2e/admin", pathBad},
		{"/api/%2e./admin", pathBad},
		{"/api/%2e/admin", pathBad},
		{"/api/%2E", pathBad},
		{"//admin", pathBad},
		{"/api//admin", pathBad},
		{"/api//", pathBad},
		{"/api\\admin", pathBad},
		{"/api%5cadmin", pathBad},
		{"/api%5Cadmin", pathBad},
		{"/api%00", pathBad},
		{"/api\x00", pathBad},
		{"/api%", pathBad},
		{"/api%2", pathBad},
		{"/api%zz", pathBad},
		{"/api/\xff", pathBad},
		{"api", pathBad},
		{"", pathBad},
		{"*", pathBad},
		// Encoded slash alone is a separate defect.
		{"/api%2Fadmin", pathEncodedSlash},
		{"/files/a%2fb/c", pathEncodedSlash},
		{"/files/a%2fb/../c", pathEncodedSlash | pathBad},
		{"/files/a%2fb%5c", pathEncodedSlash | pathBad},
		// Dot pieces between encoded slashes: an upstream decoding %2F
		// would resolve them.
		{"/files/public/a%2F..%2F..%2Fsecret", pathEncodedSlash | pathBad},
		{"/files/..%2Fsecret", pathEncodedSlash | pathBad},
		{"/files/a%2F.", pathEncodedSlash | pathBad},
		{"/files/a%2F%2e%2E/x", pathEncodedSlash | pathBad},
		{"/files/a%2F...%2Fb", pathEncodedSlash | pathBad},
		{"/files/a%2F.b%2F", pathEncodedSlash},
		{"/files/x/%2Fetc/passwd", pathEncodedSlash | pathBad},
		{"/files/x/a%2F%2Fb", pathEncodedSlash | pathBad},
		{"/%2Fa", pathEncodedSlash | pathBad},
		{"/files/x/a%2F", pathEncodedSlash},
		{"/files/x/a%2F/b", pathEncodedSlash | pathBad},
		// Dots with trailing spaces or more dots: ".." to Windows.
		{"/api/x/..%20/y", pathBad},
		{"/api/x/..%09/y", pathBad},
		{"/api/x/%2e%2e%20", pathBad},
		{"/api/x/.../y", pathBad},
		{"/api/x/. /y", pathBad},
		{"/api/x/a%20b/y", pathOK},
		{"/api/x/..a/y", pathOK},
		{"/api/x/.hidden/y", pathOK},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			if got := screenPath(tt.raw) &^ pathEscaped; got != tt.want {
				t.Errorf("screenPath(%q) = %b, want %b", tt.raw, got, tt.want)
			}
		})
	}
}

func TestDecodePath(t *testing.T) {
	tests := []struct {
		raw       string
		keepSlash bool
		want      string
		ok        bool
	}{
		{"/api/orders", false, "/api/orders", true},
		{"/api/a%20b", false, "/api/a b", true},
		{"/caf%C3%A9", false, "/café", true},
		{"/files/a%2Fb", true, "/files/a%2Fb", true},
		{"/files/a%2fb%41", true, "/files/a%2fbA", true},
		{"/bad%C3", false, "", false},
		{"/a%25b", false, "/a%b", true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, ok := decodePath(tt.raw, tt.keepSlash, nil)
			if got != tt.want || ok != tt.ok {
				t.Errorf("decodePath(%q, %v) = %q, %v; want %q, %v", tt.raw, tt.keepSlash, got, ok, tt.want, tt.ok)
			}
		})
	}
	scratch := make([]byte, 0, 64)
	got, _ := decodePath("/a%20b", false, scratch)
	if got != "/a b" || scratch[:4][1] != 'a' {
		t.Errorf("decodePath with scratch = %q", got)
	}
}

// FuzzScreenPath checks that a screened path decodes to a path without dot
// segments, empty segments, backslashes or NULs, so no glob can be bypassed.
func FuzzScreenPath(f *testing.F) {
	// Seed corpus: the bypass corpus of SPEC §5.
	for _, s := range []string{"/api/../admin", "/api/%2e%2e/admin", "/%2E%2e", "/a%2Fb", "//a", "/a\\b", "/a%00", "/a/%2e", "/files/x%2fy/z", "/caf%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		d := screenPath(raw)
		if d&pathBad != 0 {
			return
		}
		keep := d&pathEncodedSlash != 0
		p, ok := decodePath(raw, keep, nil)
		if !ok {
			return
		}
		if !utf8.ValidString(p) || p[0] != '/' {
			t.Fatalf("decoded %q to %q", raw, p)
		}
		if strings.ContainsAny(p, "\\\x00") || strings.Contains(p, "//") {
			t.Fatalf("screened %q decodes to %q", raw, p)
		}
		if !keep {
			for _, seg := range strings.Split(p[1:], "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("screened %q decodes to dot segment in %q", raw, p)
				}
			}
		}
	})
}
