package main

import (
	"os"
	"strings"
	"testing"
)

// TestHelpEverywhere: `help` lists every command; --help (and -h) on every
// command and every subcommand prints usage on stdout and exits 0 without
// touching a database or starting anything.
func TestHelpEverywhere(t *testing.T) {
	clearScopegateEnv(t)
	t.Setenv("SCOPEGATE_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	code, out, errOut := cli(t, "help")
	if code != exitOK || errOut != "" {
		t.Fatalf("help = %d, stderr %q", code, errOut)
	}
	var calls [][]string
	for _, c := range commands() {
		if !strings.Contains(out, "\n  "+c.name) {
			t.Errorf("help does not list %q:\n%s", c.name, out)
		}
		calls = append(calls, []string{c.name, "--help"}, []string{c.name, "-h"}, []string{"help", c.name})
	}
	groups := map[string][]command{"keys": keysCommands, "users": usersCommands, "grants": grantsCommands,
		"modules": modulesKind.commands(), "companies": companiesKind.commands(), "sites": sitesKind.commands()}
	for g, cmds := range groups {
		for _, c := range cmds {
			calls = append(calls, []string{g, c.name, "--help"})
		}
	}
	calls = append(calls, []string{"routes", "check", "--help"}, []string{"keys", "create", "--client-key", "x", "--help"},
		[]string{"--help"}, []string{"-h"})
	for _, args := range calls {
		code, out, errOut := cli(t, args...)
		if code != exitOK || !strings.HasPrefix(out, "usage:") || errOut != "" {
			t.Errorf("scopegate %q = %d, stdout %q, stderr %q; want 0 and usage on stdout", args, code, out, errOut)
		}
	}
	// A subcommand's help describes its flags.
	if _, out, _ := cli(t, "keys", "create", "--help"); !strings.Contains(out, "--expires-in") || !strings.Contains(out, "30d") {
		t.Errorf("keys create --help does not describe --expires-in:\n%s", out)
	}
}

// TestUnknownVariableStopsStartUp: a SCOPEGATE_ variable that no setting
// reads is invalid configuration (exit 2, one line naming it and the
// closest known name), for serve and for every command that reads the
// configuration; the test harness's prefixes pass.
func TestUnknownVariableStopsStartUp(t *testing.T) {
	cases := []struct{ name, near string }{
		{"SCOPEGATE_LISTEN_ADR", "SCOPEGATE_LISTEN_ADDR"},
		{"SCOPEGATE_TRUSTED_PROXY", "SCOPEGATE_TRUSTED_PROXIES"},
		{"SCOPEGATE_JWT_ISSUR", "SCOPEGATE_JWT_ISSUER"},
		{"SCOPEGATE_COMPLETELY_DIFFERENT_THING", ""},
	}
	for _, c := range cases {
		for _, cmd := range [][]string{{"serve"}, {"keys", "list"}, {"migrate"}} {
			clearScopegateEnv(t)
			t.Setenv("SCOPEGATE_STORE_FILE", basicStoreFile(t))
			if cmd[0] != "serve" {
				t.Setenv("SCOPEGATE_STORE_FILE", "")
				t.Setenv("SCOPEGATE_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
			}
			t.Setenv(c.name, "1")
			code, out, errOut := cli(t, cmd...)
			want := "invalid configuration: " + c.name + ": unknown variable"
			if c.near != "" {
				want += "; did you mean " + c.near + "?"
			}
			if code != exitConfig || out != "" || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("%s with %s: %d, %q, %q; want 2 and one line containing %q", cmd, c.name, code, out, errOut, want)
			}
			os.Unsetenv(c.name)
		}
	}
	clearScopegateEnv(t)
	t.Setenv("SCOPEGATE_TEST_ANYTHING", "x")
	t.Setenv("SCOPEGATE_BENCH_ANYTHING", "x")
	if _, err := loadConfig(); err != nil {
		t.Errorf("test-only prefixes refused: %v", err)
	}
}

// TestKnownVarsFromConfig: the known names are the Config struct's
// envconfig tags, all SCOPEGATE_ and none with a test-only prefix.
func TestKnownVarsFromConfig(t *testing.T) {
	known := knownVars()
	if len(known) < 40 {
		t.Fatalf("knownVars() = %d names, want every Config field", len(known))
	}
	for _, k := range known {
		if !strings.HasPrefix(k, "SCOPEGATE_") {
			t.Errorf("%s lacks the SCOPEGATE_ prefix", k)
		}
		for _, p := range testEnvPrefixes {
			if strings.HasPrefix(k, p) {
				t.Errorf("%s has the test-only prefix %s", k, p)
			}
		}
	}
}
