package proxy

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/store"
)

// openSyncStore is openPostgresStore with user sync (SPEC §14) on; edit
// (if not nil) changes its settings.
func openSyncStore(t testing.TB, edit func(*store.UserSyncConfig)) (*store.Postgres, *pgxpool.Pool) {
	t.Helper()
	pool, dsn := pgtest.NewPool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, storetest.Basic().SQL()); err != nil {
		t.Fatalf("inserting the fixture: %v", err)
	}
	sync := store.UserSyncConfig{Enabled: true, BatchWindow: 10 * time.Millisecond}
	if edit != nil {
		edit(&sync)
	}
	s, err := store.OpenPostgres(ctx, store.PostgresConfig{
		DSN:               dsn,
		Logger:            testLogger(t),
		LegacyPermissions: true,
		UserSync:          sync,
	})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, pool
}

// jwtWith signs an HS256 token with these claims (exp an hour away).
func jwtWith(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	claims["exp"] = time.Now().Add(time.Hour).Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testHS256Secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestUserSyncDecisions: through the real handler and PostgreSQL store,
// with SCOPEGATE_USER_SYNC=claims a first request of a new subject is
// decided as a known user (200, with its id upstream), and without sync it
// is 403 user_unknown; a deactivated user stays deactivated; a database
// that refuses the insert gives 403 user_unknown.
func TestUserSyncDecisions(t *testing.T) {
	s, pool := openSyncStore(t, nil)
	on := newEnv(t, envOptions{store: s, userSync: s})
	off := newEnv(t, envOptions{store: s})
	ctx := context.Background()
	me := func(e *env, tok string) *rawResponse {
		return e.do(directPeer, reqText("GET", "/api/me", "Authorization", "Bearer "+tok))
	}

	newcomer := jwtWith(t, jwt.MapClaims{"sub": "newcomer", "iss": "https://idp/", "name": "New Comer",
		"email": "newcomer@example.com", "email_verified": true})
	if r := me(off, newcomer); r.status != 403 || r.reason() != "user_unknown" {
		t.Fatalf("sync off: %d %s; want 403 user_unknown", r.status, r.body)
	}
	r := me(on, newcomer)
	if r.status != 200 {
		t.Fatalf("first request with sync on: %d %s; want 200", r.status, r.body)
	}
	var id, email string
	if err := pool.QueryRow(ctx, `SELECT id::text, email FROM users WHERE authentik_sub = 'newcomer'`).Scan(&id, &email); err != nil {
		t.Fatal(err)
	}
	if got := echoOf(t, r).header("X-Auth-User-Id"); got != id || email != "newcomer@example.com" {
		t.Errorf("upstream saw user %q (row %q, email %q)", got, id, email)
	}
	// The same store without sync now knows the user too.
	if r := me(off, newcomer); r.status != 200 {
		t.Errorf("sync off, after the row exists: %d %s", r.status, r.body)
	}

	// bob is inactive: sync never activates him.
	bob := jwtWith(t, jwt.MapClaims{"sub": "bob", "name": "Robert"})
	if r := me(on, bob); r.status != 403 || r.reason() != "user_inactive" {
		t.Errorf("bob: %d %s; want 403 user_inactive", r.status, r.body)
	}

	pgtest.Exec(t, pool, `CREATE FUNCTION refuse_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'read-only'; END $$;
CREATE TRIGGER refuse_users BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_users();`)
	refused := jwtWith(t, jwt.MapClaims{"sub": "refused", "name": "R"})
	if r := me(on, refused); r.status != 403 || r.reason() != "user_unknown" {
		t.Errorf("refused insert: %d %s; want 403 user_unknown", r.status, r.body)
	}

	waitFor(t, "bob's name written, still inactive", func() bool {
		var name string
		var active bool
		err := pool.QueryRow(ctx, `SELECT display_name, is_active FROM users WHERE authentik_sub = 'bob'`).Scan(&name, &active)
		return err == nil && name == "Robert" && !active
	})
}
