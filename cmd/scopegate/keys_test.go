package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/policy"
)

func runKeys(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"keys"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// keysDB points the keys commands at a fresh migrated database and returns a
// connection for checking rows.
func keysDB(t *testing.T) *pgx.Conn {
	t.Helper()
	dsn := pgtest.NewDB(t)
	t.Setenv("SCOPEGATE_DATABASE_URL", dsn)
	t.Setenv("SCOPEGATE_STORE_FILE", "")
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

var tokenRE = regexp.MustCompile(`^([a-z0-9-]+)\.([A-Za-z0-9_-]{43})\n$`)

// secretOf checks that stdout is exactly one token line for clientKey and
// returns the secret.
func secretOf(t *testing.T, stdout, clientKey string) string {
	t.Helper()
	m := tokenRE.FindStringSubmatch(stdout)
	if m == nil || m[1] != clientKey {
		t.Fatalf("stdout = %q, want exactly %q.<43 base64url characters> and a newline", stdout, clientKey)
	}
	return m[2]
}

func sha256Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

type clientRow struct {
	name, status, hash    string
	origins, ips, paths   []string
	rate                  *int32
	expiresAt, lastUsedAt *time.Time
}

func readClient(t *testing.T, conn *pgx.Conn, key string) clientRow {
	t.Helper()
	var r clientRow
	err := conn.QueryRow(context.Background(), `SELECT name, status::text, api_key_hash, allowed_origins, allowed_ips, allowed_paths,
  rate_limit_per_min, expires_at, last_used_at FROM api_clients WHERE client_key = $1`, key).
		Scan(&r.name, &r.status, &r.hash, &r.origins, &r.ips, &r.paths, &r.rate, &r.expiresAt, &r.lastUsedAt)
	if err != nil {
		t.Fatalf("reading client %q: %v", key, err)
	}
	return r
}

func TestKeysCreate(t *testing.T) {
	conn := keysDB(t)
	code, out, errOut := runKeys(t, "create", "--client-key", "billing-app", "--name", "Billing app",
		"--origin", "https://app.example.com", "--origin", "https://*.example.org",
		"--ip", "10.0.0.0/8", "--ip", "192.168.1.7",
		"--path", "GET /api/orders/*", "--path", "GET,POST /api/**",
		"--rate-per-min", "120", "--expires-in", "720h")
	if code != exitOK {
		t.Fatalf("keys create = %d, stderr %q", code, errOut)
	}
	secret := secretOf(t, out, "billing-app")
	if strings.Contains(errOut, secret) {
		t.Errorf("stderr %q repeats the secret", errOut)
	}
	r := readClient(t, conn, "billing-app")
	if r.hash != sha256Hash(secret) {
		t.Errorf("api_key_hash = %q, want sha256 of the printed secret %q", r.hash, sha256Hash(secret))
	}
	if strings.Contains(r.hash, secret) {
		t.Error("api_key_hash holds the secret")
	}
	checks := []struct{ field, got, want string }{
		{"name", r.name, "Billing app"},
		{"status", r.status, "active"},
		{"allowed_origins", strings.Join(r.origins, "|"), "https://app.example.com|https://*.example.org"},
		{"allowed_ips", strings.Join(r.ips, "|"), "10.0.0.0/8|192.168.1.7"},
		{"allowed_paths", strings.Join(r.paths, "|"), "GET /api/orders/*|GET,POST /api/**"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if r.rate == nil || *r.rate != 120 {
		t.Errorf("rate_limit_per_min = %v, want 120", r.rate)
	}
	if want := time.Now().Add(720 * time.Hour); r.expiresAt == nil || r.expiresAt.Sub(want).Abs() > time.Minute {
		t.Errorf("expires_at = %v, want about %v", r.expiresAt, want)
	}

	// Minimal flags: empty lists, NULL rate and expiry.
	code, out, errOut = runKeys(t, "create", "--client-key", "plain", "--name", "Plain")
	if code != exitOK {
		t.Fatalf("keys create (minimal) = %d, stderr %q", code, errOut)
	}
	secretOf(t, out, "plain")
	r = readClient(t, conn, "plain")
	if r.origins == nil || len(r.origins)+len(r.ips)+len(r.paths) != 0 || r.rate != nil || r.expiresAt != nil {
		t.Errorf("minimal row = %+v, want empty lists and NULL rate and expiry", r)
	}
	if !strings.Contains(errOut, "any address on any path") {
		t.Errorf("stderr %q lacks the note about an unrestricted key", errOut)
	}

	// Duplicate client_key: refused, nothing printed, row unchanged.
	before := readClient(t, conn, "billing-app").hash
	code, out, errOut = runKeys(t, "create", "--client-key", "billing-app", "--name", "Again")
	if code != exitFail || out != "" || !strings.Contains(errOut, `client_key "billing-app" already exists`) {
		t.Errorf("duplicate create = %d, stdout %q, stderr %q; want 1, nothing, already exists", code, out, errOut)
	}
	if after := readClient(t, conn, "billing-app"); after.hash != before || after.name != "Billing app" {
		t.Errorf("duplicate create changed the row: %+v", after)
	}
}

func TestKeysRotateRevokeList(t *testing.T) {
	conn := keysDB(t)
	_, out, _ := runKeys(t, "create", "--client-key", "app", "--name", "App", "--rate-per-min", "0")
	oldSecret := secretOf(t, out, "app")
	if code, _, errOut := runKeys(t, "create", "--client-key", "zeta", "--name", "Zeta", "--rate-per-min", "30"); code != exitOK {
		t.Fatalf("keys create zeta = %d, stderr %q", code, errOut)
	}

	code, out, errOut := runKeys(t, "rotate", "app")
	if code != exitOK {
		t.Fatalf("keys rotate = %d, stderr %q", code, errOut)
	}
	newSecret := secretOf(t, out, "app")
	if newSecret == oldSecret {
		t.Fatal("rotate printed the old secret")
	}
	r := readClient(t, conn, "app")
	if r.hash != sha256Hash(newSecret) || r.hash == sha256Hash(oldSecret) {
		t.Errorf("after rotate api_key_hash = %q, want the new secret's hash, not the old one's", r.hash)
	}

	code, out, errOut = runKeys(t, "revoke", "app")
	if code != exitOK || out != "" {
		t.Fatalf("keys revoke = %d, stdout %q, stderr %q", code, out, errOut)
	}
	if r := readClient(t, conn, "app"); r.status != "revoked" {
		t.Errorf("after revoke status = %q, want revoked", r.status)
	}
	updated := readUpdatedAt(t, conn, "app")
	if code, out, errOut = runKeys(t, "revoke", "app"); code != exitOK || out != "" || !strings.Contains(errOut, `client "app" was already revoked: nothing changed`) {
		t.Errorf("second revoke = %d, %q, %q; want 0 and already revoked", code, out, errOut)
	}
	if code, _, errOut = runKeys(t, "activate", "app"); code != exitFail || !strings.Contains(errOut, "revocation is final") {
		t.Errorf("activate of a revoked key = %d, %q; want 1, revocation is final", code, errOut)
	}
	if readUpdatedAt(t, conn, "app") != updated {
		t.Error("a second revoke or a refused activate touched updated_at")
	}
	code, _, errOut = runKeys(t, "rotate", "app")
	if code != exitOK || !strings.Contains(errOut, `status is "revoked"`) {
		t.Errorf("rotate of a revoked key = %d, stderr %q; want 0 and a warning", code, errOut)
	}
	r = readClient(t, conn, "app")

	lastUsed := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if _, err := conn.Exec(context.Background(), `UPDATE api_clients SET last_used_at = $1 WHERE client_key = 'zeta'`, lastUsed); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runKeys(t, "list")
	if code != exitOK {
		t.Fatalf("keys list = %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := [][]string{
		{"CLIENT_KEY", "NAME", "STATUS", "EXPIRES_AT", "LAST_USED_AT", "RATE_PER_MIN"},
		{"app", "App", "revoked", "never", "never", "unlimited"},
		{"zeta", "Zeta", "active", "never", "2026-03-04T05:06:07Z", "30"},
	}
	if len(lines) != len(want) {
		t.Fatalf("keys list printed %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("keys list line %d = %q, want fields %q", i, lines[i], w)
		}
	}
	for _, secretish := range []string{"sha256:", oldSecret, newSecret, r.hash[7:]} {
		if strings.Contains(out, secretish) {
			t.Errorf("keys list output shows %q", secretish)
		}
	}
}

func readUpdatedAt(t *testing.T, conn *pgx.Conn, key string) time.Time {
	t.Helper()
	var u time.Time
	if err := conn.QueryRow(context.Background(), `SELECT updated_at FROM api_clients WHERE client_key = $1`, key).Scan(&u); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestKeysSuspendActivateShow: suspend and activate move the status both
// ways (saying when nothing changed); show and list --json print the row's
// settings and never the hash; --expires-in takes days.
func TestKeysSuspendActivateShow(t *testing.T) {
	conn := keysDB(t)
	if code, _, errOut := runKeys(t, "create", "--client-key", "svc", "--name", "Svc", "--ip", "10.0.0.0/8", "--expires-in", "30d"); code != exitOK {
		t.Fatalf("create --expires-in 30d = %d, %q", code, errOut)
	}
	if r := readClient(t, conn, "svc"); r.expiresAt == nil || r.expiresAt.Sub(time.Now().Add(30*24*time.Hour)).Abs() > time.Minute {
		t.Errorf("expires_at = %v, want 30 days from now", r.expiresAt)
	}
	steps := []struct {
		verb, status, stderr string
	}{
		{"suspend", "suspended", `suspended client "svc" (was active)`},
		{"suspend", "suspended", `client "svc" was already suspended: nothing changed`},
		{"activate", "active", `client "svc" is active again (was suspended)`},
		{"activate", "active", `client "svc" was already active: nothing changed`},
	}
	for _, s := range steps {
		code, out, errOut := runKeys(t, s.verb, "svc")
		if code != exitOK || out != "" || !strings.Contains(errOut, s.stderr) {
			t.Errorf("keys %s = %d, %q, %q; want 0 and %q", s.verb, code, out, errOut, s.stderr)
		}
		if got := readClient(t, conn, "svc").status; got != s.status {
			t.Errorf("after keys %s status = %q, want %q", s.verb, got, s.status)
		}
	}
	code, out, errOut := runKeys(t, "show", "svc")
	if code != exitOK || !strings.Contains(out, "allowed_ips:        10.0.0.0/8") || !strings.Contains(out, "allowed_paths:      any (no restriction)") ||
		strings.Contains(out, "sha256") {
		t.Errorf("keys show = %d\n%s%s", code, out, errOut)
	}
	var list []keyRow
	_, out, _ = runKeys(t, "list", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].ClientKey != "svc" || list[0].Status != "active" ||
		len(list[0].AllowedIPs) != 1 || list[0].ExpiresAt == nil || strings.Contains(out, "sha256") {
		t.Errorf("keys list --json = %v\n%s", err, out)
	}
	if code, _, errOut := runKeys(t, "show", "ghost"); code != exitFail || !strings.Contains(errOut, `no client with client_key "ghost"`) {
		t.Errorf("keys show ghost = %d, %q", code, errOut)
	}
}

func TestKeysErrors(t *testing.T) {
	keysDB(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no subcommand", nil, exitConfig, "usage:"},
		{"unknown subcommand", []string{"frobnicate"}, exitConfig, `unknown keys command "frobnicate"`},
		{"create without client key", []string{"create", "--name", "x"}, exitConfig, "--client-key is required"},
		{"create without name", []string{"create", "--client-key", "x"}, exitConfig, "--name is required"},
		{"create unknown flag", []string{"create", "--client-key", "x", "--name", "x", "--colour", "red"}, exitConfig, "flag provided but not defined: -colour"},
		{"create stray argument", []string{"create", "--client-key", "x", "--name", "x", "extra"}, exitConfig, `unexpected argument "extra"`},
		{"create bad cidr", []string{"create", "--client-key", "x", "--name", "x", "--ip", "10.0.0.0/8", "--ip", "10.0.0.0/33"}, exitConfig, `--ip "10.0.0.0/33"`},
		{"create bad origin", []string{"create", "--client-key", "x", "--name", "x", "--origin", "not an origin"}, exitConfig, `--origin "not an origin"`},
		{"create bad glob", []string{"create", "--client-key", "x", "--name", "x", "--path", "api/x"}, exitConfig, `--path "api/x"`},
		{"create negative rate", []string{"create", "--client-key", "x", "--name", "x", "--rate-per-min", "-1"}, exitConfig, "--rate-per-min must be 0"},
		{"create bad duration", []string{"create", "--client-key", "x", "--name", "x", "--expires-in", "30x"}, exitConfig, `"30x" is not a duration such as 720h or 30d`},
		{"create zero duration", []string{"create", "--client-key", "x", "--name", "x", "--expires-in", "0s"}, exitConfig, "--expires-in must be a positive duration"},
		{"rotate without key", []string{"rotate"}, exitConfig, "usage: scopegate keys rotate CLIENT_KEY"},
		{"revoke two keys", []string{"revoke", "a", "b"}, exitConfig, "usage: scopegate keys revoke CLIENT_KEY"},
		{"list with argument", []string{"list", "x"}, exitConfig, "usage: scopegate keys list"},
		{"rotate unknown", []string{"rotate", "ghost"}, exitFail, `no client with client_key "ghost"`},
		{"revoke unknown", []string{"revoke", "ghost"}, exitFail, `no client with client_key "ghost"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runKeys(t, tc.args...)
			if code != tc.code || out != "" || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("keys %q = %d, stdout %q, stderr %q; want %d, nothing, containing %q", tc.args, code, out, errOut, tc.code, tc.stderr)
			}
		})
	}
	if code, out, errOut := runKeys(t, "list"); code != exitOK || strings.Count(out, "\n") != 1 {
		t.Errorf("after the failures keys list = %d, %q, %q; want only the header (nothing stored)", code, out, errOut)
	}
}

func TestKeysNeedsDatabaseURL(t *testing.T) {
	t.Setenv("SCOPEGATE_DATABASE_URL", "")
	t.Setenv("SCOPEGATE_STORE_FILE", "")
	for _, args := range [][]string{{"list"}, {"create", "--client-key", "a", "--name", "a"}, {"rotate", "a"}, {"revoke", "a"}} {
		code, out, errOut := runKeys(t, args...)
		if code != exitConfig || out != "" || !strings.Contains(errOut, "SCOPEGATE_DATABASE_URL") {
			t.Errorf("keys %q without a database = %d, %q, %q; want 2 naming SCOPEGATE_DATABASE_URL", args, code, out, errOut)
		}
	}
	t.Setenv("SCOPEGATE_DATABASE_URL", "postgres://scopegate:supersecret@127.0.0.1:1/nowhere?connect_timeout=2")
	code, _, errOut := runKeys(t, "list")
	if code != exitFail || strings.Contains(errOut, "supersecret") {
		t.Errorf("keys list with an unreachable database = %d, stderr %q; want 1 without the password", code, errOut)
	}
}

// TestKeysTokenPassesEngine checks that a token printed by create passes the
// policy engine against the stored row, and that after rotate the old token
// is api_key_invalid and the new one passes. (End to end through serve is
// the integration suite's.)
func TestKeysTokenPassesEngine(t *testing.T) {
	conn := keysDB(t)
	e, err := policy.NewEngine(policy.EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(token string) policy.Reason {
		t.Helper()
		r := readClient(t, conn, "svc")
		var id string
		if err := conn.QueryRow(context.Background(), `SELECT id::text FROM api_clients WHERE client_key = 'svc'`).Scan(&id); err != nil {
			t.Fatal(err)
		}
		var rate *int
		if r.rate != nil {
			n := int(*r.rate)
			rate = &n
		}
		c, errs := policy.CompileClient(policy.ClientRecord{ID: id, ClientKey: "svc", Name: r.name, Status: r.status, APIKeyHash: r.hash,
			AllowedOrigins: r.origins, AllowedIPs: r.ips, AllowedPaths: r.paths, RateLimitPerMin: rate, ExpiresAt: r.expiresAt})
		if len(errs) > 0 {
			t.Fatalf("CompileClient(stored row) = %v", errs)
		}
		req := policy.Request{Method: "GET", RawPath: "/api/x", ClientIP: netip.MustParseAddr("10.1.2.3"), Now: time.Now(),
			Cred: policy.ParseCredential(policy.CredentialHeaders{APIKey: token})}
		m, d := e.Match(&req)
		if d.Reason != policy.ReasonNone {
			return d.Reason
		}
		return e.AuthorizeClient(&req, &m, c).Reason
	}
	code, out, _ := runKeys(t, "create", "--client-key", "svc", "--name", "Service", "--ip", "10.0.0.0/8", "--path", "GET /api/**", "--expires-in", "1h")
	if code != exitOK {
		t.Fatalf("keys create = %d", code)
	}
	oldToken := strings.TrimSuffix(out, "\n")
	if got := decide(oldToken); got != policy.ReasonNone {
		t.Fatalf("created token: decision %v, want allow", got)
	}
	_, out, _ = runKeys(t, "rotate", "svc")
	newToken := strings.TrimSuffix(out, "\n")
	if got := decide(oldToken); got != policy.ReasonAPIKeyInvalid {
		t.Errorf("old token after rotate: decision %v, want api_key_invalid", got)
	}
	if got := decide(newToken); got != policy.ReasonNone {
		t.Errorf("rotated token: decision %v, want allow", got)
	}
	runKeys(t, "revoke", "svc")
	if got := decide(newToken); got != policy.ReasonAPIKeyInactive {
		t.Errorf("revoked token: decision %v, want api_key_inactive", got)
	}
}
