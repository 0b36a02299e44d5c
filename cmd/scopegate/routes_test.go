package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoutesCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "routes:\n  - path: /healthz\n    auth: none\n  - path: /api/**\n")
	shadow := write("shadow.yaml", "routes:\n  - path: /api/**\n  - path: /api/x\n")
	bad := write("bad.yaml", "default: maybe\nroutes:\n  - path: /a//b\n  - path: /c\n    auth: [token]\n")
	badCORS := write("cors.yaml", "cors:\n  allow_origins:\n    - https://ok.example\n    - https://bad.example/path\n  allow_methods: [get]\n  max_age: -5\nroutes: []\n")
	tests := []struct {
		name     string
		args     []string
		env      string
		code     int
		inStderr []string
	}{
		{"good", []string{"routes", "check", good}, "", 0, nil},
		{"default from env", []string{"routes", "check"}, good, 0, nil},
		{"shadow warns", []string{"routes", "check", shadow}, "", 0, []string{"shadow.yaml:3: warning:"}},
		{"shadow strict", []string{"routes", "check", shadow, "--strict"}, "", 1, []string{"shadow.yaml:3: warning:", "--strict"}},
		{"bad file", []string{"routes", "check", bad}, "", 1, []string{"bad.yaml:1: error: unknown default", "bad.yaml:3: error:", "bad.yaml:5: error: unknown credential kind"}},
		{"bad cors block", []string{"routes", "check", badCORS}, "", 1, []string{"cors.yaml:4: error: cors: allow_origins entry", "cors.yaml:5: error: cors: allow_methods", "cors.yaml:6: error: cors: max_age"}},
		{"missing file", []string{"routes", "check", filepath.Join(dir, "nope.yaml")}, "", 1, []string{"nope.yaml"}},
		{"no file", []string{"routes", "check"}, "", 2, []string{"SCOPEGATE_ROUTES_FILE"}},
		{"bad subcommand", []string{"routes", "lint"}, "", 2, nil},
		{"unknown flag", []string{"routes", "check", "--nope"}, "", 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SCOPEGATE_ROUTES_FILE", tt.env)
			var out, errb bytes.Buffer
			code := run(tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("run(%v) = %d, want %d; stderr:\n%s", tt.args, code, tt.code, errb.String())
			}
			for _, s := range tt.inStderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr %q lacks %q", errb.String(), s)
				}
			}
		})
	}
}
