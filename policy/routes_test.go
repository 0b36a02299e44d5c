package policy

import (
	"errors"
	"strings"
	"testing"
)

const specRoutes = `default: deny                 # deny | authenticated
action_by_method: {GET: view, HEAD: view, POST: create, PUT: update, PATCH: update, DELETE: delete}
superuser_actions: [manage]
routes:
  - path: /healthz
    auth: none
  - path: /api/companies/{company}/sites/{site}/**
    module: inventory
    scope: site:{site}
  - path: /api/companies/{company}/**
    methods: [GET]
    module: billing
    action: view
    scope: company:{company}
  - path: /api/stock/**
    module: stock
    scope: site:header:X-Site-Key
  - path: /api/ledger/**
    module: billing
    scope: company:query:company
  - path: /api/reports/**
    auth: [jwt]
    module: reports
    scope: any
  - path: /api/me
    auth: [jwt]
  - path: /api/keys-only/**
    auth: [api_key]
  - path: /files/{name}/**
    allow_encoded_slash: true
`

func TestParseRoutesSpecExample(t *testing.T) {
	r, warns, err := ParseRoutes([]byte(specRoutes))
	if err != nil {
		t.Fatalf("ParseRoutes: %v", err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if r.Len() != 9 || r.Line(0) != 5 || r.Path(1) != "/api/companies/{company}/sites/{site}/**" {
		t.Errorf("Len=%d Line(0)=%d Path(1)=%q", r.Len(), r.Line(0), r.Path(1))
	}
}

func TestParseRoutesErrors(t *testing.T) {
	tests := []struct {
		name, yml string
		line      int
		msg       string
	}{
		{"yaml syntax", "routes:\n  - path: /a\n    methods: [GET\n  - path: /b\n", 2, "yaml: did not find"},
		{"yaml tab", "routes:\n\t- path: /a\n", 2, "yaml"},
		{"unknown top field", "routes: []\nfoo: 1\n", 2, `unknown field "foo"`},
		{"unknown route field", "routes:\n  - path: /a\n    modul: x\n", 3, `unknown field "modul"`},
		{"unknown default", "default: allow\nroutes: []\n", 1, "unknown default"},
		{"unknown credential kind", "routes:\n  - path: /a\n    auth: [apikey]\n", 3, "unknown credential kind"},
		{"auth scalar", "routes:\n  - path: /a\n    auth: jwt\n", 3, "auth must be"},
		{"malformed scope", "routes:\n  - path: /a/{c}\n    module: m\n    scope: tenant:{c}\n", 4, "scope kind"},
		{"malformed scope source", "routes:\n  - path: /a/{c}\n    module: m\n    scope: site:cookie:x\n", 4, "scope value"},
		{"scope header with underscore", "routes:\n  - path: /a\n    module: m\n    scope: site:header:X_Site_Key\n", 4, "must not contain '_'"},
		{"placeholder missing", "routes:\n  - path: /a/{company}\n    module: m\n    scope: site:{site}\n", 4, "not in the path"},
		{"bad glob", "routes:\n  - path: /a//b\n", 2, "empty segment"},
		{"bad glob deep", "routes:\n  - path: /a/b**\n", 2, `"**"`},
		{"bad method", "routes:\n  - path: /a\n    methods: [get]\n", 3, "bad method"},
		{"missing path", "routes:\n  - module: m\n", 2, "without path"},
		{"module without scope", "routes:\n  - path: /a\n    module: m\n", 2, "needs a scope"},
		{"scope without module", "routes:\n  - path: /a/{company}\n    auth: [jwt]\n    scope: company:{company}\n", 4, "scope without module"},
		{"public with module", "routes:\n  - path: /a\n    auth: none\n    module: m\n    scope: any\n", 3, "auth: none"},
		{"duplicate key", "routes:\n  - path: /a\n    path: /b\n", 3, "duplicate"},
		{"alias", "x: &a /p\nroutes:\n  - path: *a\n", 1, ""},
		{"empty", "", 1, "empty"},
		{"missing routes", "default: deny\n", 1, "missing routes"},
		{"bad encoded slash flag", "routes:\n  - path: /a\n    allow_encoded_slash: yes please\n", 3, "allow_encoded_slash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseRoutes([]byte(tt.yml))
			if err == nil {
				t.Fatal("ParseRoutes accepted a bad file")
			}
			var re RoutesError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a RoutesError", err)
			}
			if re.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("ParseRoutes error = %q (line %d), want line %d containing %q", err, re.Line, tt.line, tt.msg)
			}
		})
	}
}

func TestParseRoutesShadowWarnings(t *testing.T) {
	yml := `routes:
  - path: /api/**
  - path: /api/orders/{id}
  - path: /x/*
    methods: [GET]
  - path: /x/a
    methods: [GET]
  - path: /x/b
  - path: /y/{id}
  - path: /y/*
`
	_, warns, err := ParseRoutes([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, w := range warns {
		lines = append(lines, w.Line)
	}
	want := []int{3, 6}
	if len(lines) != len(want) || lines[0] != want[0] || lines[1] != want[1] {
		t.Errorf("shadow warning lines = %v, want %v (%v)", lines, want, warns)
	}
}

// FuzzRoutesYAML checks that no routes file panics and that a parsed file's
// rules can be matched.
func FuzzRoutesYAML(f *testing.F) {
	// Seed corpus: the SPEC example and a few broken files.
	f.Add([]byte(specRoutes), "/api/companies/acme/sites/paris/x")
	f.Add([]byte("routes:\n  - path: /a/{x}\n    module: m\n    scope: site:{x}\n"), "/a/b")
	f.Add([]byte("routes: [{path: /a, auth: none}]"), "/a")
	f.Add([]byte("default: authenticated\nroutes:\n- path: /**\n  methods: [GET]\n"), "/z")
	f.Add([]byte("x: &a [*a]\n"), "/")
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		r, _, err := ParseRoutes(data)
		if err != nil {
			return
		}
		e := mustEngine(t, EngineConfig{Routes: r})
		_, _ = e.Match(&Request{Method: "GET", RawPath: path, Cred: Credential{Kind: CredentialJWT}})
	})
}
