package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/storetest"
)

// explainWants are what the trace must say beyond the reason, for cases of
// parityTable where it matters: which grant allowed, which check failed.
var explainWants = map[string][]string{
	"public route":                          {"ok    credential", "auth: none"},
	"no route":                              {"DENY  route", "no_route: no route matches GET /other"},
	"encoded slash":                         {"path_invalid"},
	"unparsable forwarded for":              {"DENY  client address", "DENY  forwarded headers", `X-Forwarded-For "not-an-ip"`},
	"key allowed":                           {`ok    api key`, `client "app"`, "ok    allowed_paths", "ok    rate limit"},
	"unknown client":                        {`no client with client_key "nobody"`},
	"malformed token":                       {"not <client_key>.<secret>"},
	"wrong secret":                          {`the secret does not match client "app"`},
	"suspended":                             {`DENY  status`, `status "suspended"`},
	"expired":                               {"DENY  expiry"},
	"ip not allowed":                        {"DENY  allowed_ips", "127.0.0.1", "10.0.0.0/8"},
	"ip allowed via trusted xff":            {"10.1.2.3: the right-most untrusted entry", "ok    allowed_ips"},
	"origin not allowed":                    {"DENY  allowed_origins", `Origin "https://evil.example.com"`},
	"path not allowed":                      {"DENY  allowed_paths", "DELETE /api/things/1"},
	"key on a jwt-only route":               {"DENY  credential", "credential_not_accepted: api_key, and the route accepts jwt"},
	"jwt expired":                           {"DENY  token", "token_expired"},
	"jwt bad signature":                     {"DENY  token", "token_invalid: the token says alg HS256"},
	"user unknown":                          {"DENY  user", "user_unknown"},
	"user inactive":                         {"DENY  user", `user "bob"`},
	"authenticated route":                   {"ok    grant", "names no module and no scope"},
	"company grant":                         {"ok    grant", "view on inventory: the company grant on acme"},
	"company named by id":                   {"ok    grant", "the company grant on acme"},
	"company grant on a site":               {"ok    grant", "the company grant on acme, the site's company"},
	"site grant":                            {"ok    grant", "update on inventory: the site grant on acme-hq"},
	"superuser action on a site":            {"ok    grant", "superuser action manage"},
	"scope from a header":                   {"ok    scope", `site:header:X-Site-Key read "acme-hq"`},
	"scope any":                             {"ok    scope", "any company or site"},
	"scope unknown":                         {"DENY  scope", `company:{company} read "initech"`},
	"scope header missing":                  {"DENY  scope", `site:header:X-Site-Key read ""`},
	"company inactive":                      {"DENY  scope", "company globex, active false"},
	"module unknown":                        {"DENY  module", `no module "ghost"`},
	"module inactive":                       {"DENY  module", `module "legacy" is not active`},
	"no grant":                              {"DENY  grant", "the user's grants on inventory: none"},
	"action not granted":                    {"DENY  grant", "no delete on inventory grant", "view on company:acme"},
	"site grant does not cover the company": {"DENY  grant", "update on site:acme-hq"},
}

// TestExplain runs `scopegate explain` for every request of the parity
// table, on the file store and on PostgreSQL: the answer is the one serve
// gives (status and reason, exit 0 on allow and 1 on deny), the trace ends
// with the step that decided, and it names the grant that allowed or why
// none did.
func TestExplain(t *testing.T) {
	onBothStores(t, storetest.Basic(), func(t *testing.T, env map[string]string, _ string) { runExplainTable(t, env) })
}

func runExplainTable(t *testing.T, env map[string]string) {
	clearScopegateEnv(t)
	for k, v := range env {
		if k != "SCOPEGATE_UPSTREAM_URL" {
			t.Setenv(k, v)
		}
	}
	f := storetest.Basic()
	seen := map[string]bool{}
	for _, c := range parityTable() {
		if seen[c.name] || strings.HasPrefix(c.name, "rate limit") {
			continue // explain has a bucket of its own per run
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			args := []string{"explain"}
			if c.key != "" {
				tok := c.key
				if _, ok := f.Secrets[c.key]; ok {
					tok = f.Token(c.key)
				}
				args = append(args, "--api-key", tok)
			}
			if c.sub != "" {
				args = append(args, "--jwt", parityJWT(t, c.sub, c.jwtKind))
			}
			for k, v := range c.headers {
				if k == "Origin" {
					args = append(args, "--origin", v)
				} else if k != "X-Use-Bearer" {
					args = append(args, "--header", k+": "+v)
				}
			}
			args = append(args, c.method, c.path)
			code, out, errOut := cli(t, args...)
			wantCode, answer := exitFail, fmt.Sprintf("answer: %d %s", c.status, c.reason)
			if c.status == 200 {
				wantCode, answer = exitOK, "answer: 200 allow"
			}
			if code != wantCode || !strings.Contains(out, answer) {
				t.Fatalf("explain = %d, want %d and %q\n%s%s", code, wantCode, answer, out, errOut)
			}
			for _, w := range explainWants[c.name] {
				if !strings.Contains(out, w) {
					t.Errorf("explain output lacks %q:\n%s", w, out)
				}
			}
			// Every step before the last passed; the last denied iff the
			// answer is a denial.
			var marks []string
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 1 && (f[0] == "ok" || f[0] == "DENY") {
					marks = append(marks, f[0])
				}
			}
			if len(marks) == 0 {
				t.Fatalf("no steps printed:\n%s", out)
			}
			for i, m := range marks[:len(marks)-1] {
				if m != "ok" && !(c.reason == "forwarded_invalid" && i >= 0) {
					t.Errorf("step %d is %s before the last one:\n%s", i, m, out)
				}
			}
			if last := marks[len(marks)-1]; (last == "DENY") != (c.status != 200) {
				t.Errorf("last step %s for status %d:\n%s", last, c.status, out)
			}
		})
	}
}

// TestExplainSubject: --sub explains a user's decision without a token of
// theirs, on the same checks.
func TestExplainSubject(t *testing.T) {
	env := parityEnv(t)
	env["SCOPEGATE_STORE_FILE"] = basicStoreFile(t)
	clearScopegateEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("SCOPEGATE_JWT_ISSUER", "https://idp.example.com/")
	t.Setenv("SCOPEGATE_JWT_AUDIENCE", "gateway")
	code, out, errOut := cli(t, "explain", "--sub", "alice", "GET", "/api/companies/acme/sites/acme-hq/inventory/x")
	if code != exitOK || !strings.Contains(out, `verified; subject "alice"`) || !strings.Contains(out, "the company grant on acme, the site's company") ||
		!strings.Contains(out, "X-Auth-Scope: site:acme-hq") {
		t.Errorf("explain --sub alice = %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, "explain", "--sub", "carol", "GET", "/api/companies/acme/inventory/x")
	if code != exitFail || !strings.Contains(out, "answer: 403 permission_denied") {
		t.Errorf("explain --sub carol = %d\n%s", code, out)
	}
	for _, args := range [][]string{{"GET"}, {"GET", "relative"}, {"--sub", "a", "--jwt", "b", "GET", "/"}, {"--peer", "nope", "GET", "/"}, {"--header", "novalue", "GET", "/"}} {
		if code, _, errOut := cli(t, append([]string{"explain"}, args...)...); code != exitConfig || !strings.Contains(errOut, "explain:") {
			t.Errorf("explain %q = %d, %q; want 2", args, code, errOut)
		}
	}
}
