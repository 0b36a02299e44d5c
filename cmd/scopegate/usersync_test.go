package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
)

// TestUserSyncConfigErrors: a bad SCOPEGATE_USER_SYNC, a zero interval, and
// sync with the file store (declarative: never written) exit 2 with one
// line naming the variable.
func TestUserSyncConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"file store", map[string]string{"SCOPEGATE_USER_SYNC": "claims"}, "SCOPEGATE_USER_SYNC: claims needs SCOPEGATE_DATABASE_URL"},
		{"unknown mode", map[string]string{"SCOPEGATE_USER_SYNC": "email"}, "SCOPEGATE_USER_SYNC"},
		{"zero interval", map[string]string{"SCOPEGATE_USER_SYNC": "claims", "SCOPEGATE_USER_SYNC_INTERVAL": "0s"}, "SCOPEGATE_USER_SYNC_INTERVAL"},
		{"bad trust flag", map[string]string{"SCOPEGATE_USER_SYNC_TRUST_EMAIL": "maybe"}, "SCOPEGATE_USER_SYNC_TRUST_EMAIL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			serveEnv(t, "http://127.0.0.1:1")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"serve"}, &stdout, &stderr); code != exitConfig {
				t.Fatalf("exit %d, want 2; stderr %s", code, stderr.String())
			}
			line := strings.TrimSpace(stderr.String())
			if strings.Count(line, "\n") != 0 || !strings.Contains(line, c.want) {
				t.Errorf("stderr %q: want one line naming %s", line, c.want)
			}
		})
	}
}

// TestServeUserSyncTwoGateways: two real gateways (serve, PostgreSQL store,
// SCOPEGATE_USER_SYNC=claims) on one database race on the first requests
// of one new user: every request is allowed as that user, one row exists,
// and the gateway that did not create it knows the user too.
func TestServeUserSyncTwoGateways(t *testing.T) {
	dsn := parityDB(t)
	env := parityEnv(t)
	env["SCOPEGATE_DATABASE_URL"] = dsn
	env["SCOPEGATE_USER_SYNC"] = "claims"
	a := startGateway(t, env)
	b := startGateway(t, env)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "first-login", "exp": time.Now().Add(time.Hour).Unix(), "iss": "https://idp.example.com/",
		"name": "First Login", "email": "first@example.com", "email_verified": false,
	}).SignedString([]byte(paritySecret))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]string, 12)
	for i := range results {
		g := a
		if i%2 == 1 {
			g = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+tok)
			results[i] = fmt.Sprint(status, " ", body)
		}()
	}
	wg.Wait()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	var id, name, lastError, source string
	var email *string
	if err := conn.QueryRow(ctx, `SELECT count(*) OVER (), u.id::text, u.email, u.display_name, a.last_error, a.source_version
FROM users u JOIN auth_sync_state a ON a.user_id = u.id WHERE u.authentik_sub = 'first-login'`).Scan(&n, &id, &email, &name, &lastError, &source); err != nil {
		t.Fatal(err)
	}
	if n != 1 || email != nil || name != "First Login" || lastError != "email: email_verified is not true" || source != "https://idp.example.com/" {
		t.Errorf("row: %d rows, email %v, name %q, last_error %q, source %q", n, email, name, lastError, source)
	}
	for i, r := range results {
		if !strings.HasPrefix(r, "200 ") || !strings.Contains(r, id) {
			t.Errorf("request %d: %s; want 200 as user %s", i, r, id)
		}
	}
}

// TestDemoIgnoresUserSync: the demo's store is a file, so it runs with sync
// off and says it ignores SCOPEGATE_USER_SYNC, where serve would refuse.
func TestDemoIgnoresUserSync(t *testing.T) {
	d := startDemo(t, map[string]string{"SCOPEGATE_USER_SYNC": "claims"})
	if !strings.Contains(d.logs.String(), `"var":"SCOPEGATE_USER_SYNC"`) {
		t.Errorf("no warning that SCOPEGATE_USER_SYNC is ignored:\n%s", d.logs)
	}
}
