package store

import (
	"slices"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"[]", nil},
		{"", nil},
		{`["a"]`, []string{"a"}},
		{`["10.0.0.0/8", "192.168.1.10"]`, []string{"10.0.0.0/8", "192.168.1.10"}},
		{` [ "a" ,"b" ] `, []string{"a", "b"}},
		{`["a\"b", "c"]`, []string{`a"b`, "c"}},
		{`["\u00e9t\u00e9"]`, []string{"été"}},
		{`[1, "x", null, true, {"a": [1, 2]}, ["n"]]`, []string{"1", "x", "null", "true", `{"a": [1, 2]}`, `["n"]`}},
		{`"GET /api/**"`, []string{`"GET /api/**"`}},
		{`{"a": 1}`, []string{`{"a": 1}`}},
		{`null`, []string{"null"}},
		{`["a",]`, []string{`["a",]`}},
		{`["a"] x`, []string{`["a"] x`}},
		{"\u00a0", []string{"\u00a0"}}, // not JSON whitespace: one raw entry, never "no restriction"
	}
	for _, tt := range tests {
		if got := parseListInto(nil, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("parseListInto(nil, %q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseList: parseListInto never panics, and never returns an empty list
// for input that is not an empty array (a malformed value must not lift a
// restriction).
func FuzzParseList(f *testing.F) {
	for _, s := range []string{`[]`, `["a", "b"]`, `["a\"b"]`, `[1, {"x": 2}]`, `"x"`, `[`, `["a",]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := parseListInto(nil, s)
		if len(got) == 0 {
			switch trimmed := strings.Trim(s, " \t\r\n"); trimmed { // JSON whitespace, as parseListInto trims
			case "", "[]":
			default:
				if !isEmptyJSONArray(trimmed) {
					t.Errorf("parseListInto(nil, %q) = empty", s)
				}
			}
		}
	})
}

func isEmptyJSONArray(s string) bool {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	for _, c := range s[1 : len(s)-1] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}
