package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

// withSync turns user sync on, with edit applied to its settings.
func withSync(edit func(*store.UserSyncConfig)) func(*store.PostgresConfig) {
	return func(c *store.PostgresConfig) {
		c.UserSync.Enabled = true
		c.UserSync.BatchWindow = 10 * time.Millisecond
		if edit != nil {
			edit(&c.UserSync)
		}
	}
}

// edits applies every edit in turn.
func edits(fs ...func(*store.PostgresConfig)) func(*store.PostgresConfig) {
	return func(c *store.PostgresConfig) {
		for _, f := range fs {
			if f != nil {
				f(c)
			}
		}
	}
}

// claimsFor is a verified token's claims as the engine hands them over,
// mapped by policy.ProfileFromClaims.
func claimsFor(sub string, raw map[string]any, trustEmail bool) policy.Claims {
	p := policy.ProfileFromClaims(raw, trustEmail)
	return policy.Claims{Subject: sub, Profile: &p}
}

// lookupAndSync is the proxy's JWT branch: LookupUser, then SyncUser.
func lookupAndSync(t testing.TB, s *store.Postgres, c policy.Claims) (*policy.User, error) {
	t.Helper()
	ctx, now := context.Background(), time.Now()
	u, err := s.LookupUser(ctx, c.Subject, now)
	if err != nil {
		return nil, err
	}
	return s.SyncUser(ctx, u, c, now)
}

// userRow is a users row with its auth_sync_state, as the database holds it.
type userRow struct {
	id, email, name, status string // email, name: "<NULL>" when NULL
	active                  bool
	synced                  bool   // auth_sync_state.last_synced_at set
	source, lastError       string // "<NULL>" when NULL
	grants                  int
}

func readUser(t testing.TB, db *pgxpool.Pool, sub string) (userRow, bool) {
	t.Helper()
	var r userRow
	err := db.QueryRow(context.Background(), `
SELECT u.id::text, coalesce(u.email, '<NULL>'), coalesce(u.display_name, '<NULL>'), u.status::text, u.is_active,
       a.last_synced_at IS NOT NULL, coalesce(a.source_version, '<NULL>'), coalesce(a.last_error, '<NULL>'),
       (SELECT count(*) FROM user_scope_permissions g WHERE g.user_id = u.id)
FROM users u LEFT JOIN auth_sync_state a ON a.user_id = u.id
WHERE u.authentik_sub = $1`, sub).Scan(&r.id, &r.email, &r.name, &r.status, &r.active, &r.synced, &r.source, &r.lastError, &r.grants)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return r, true
}

func countUsers(t testing.TB, db *pgxpool.Pool, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUserSyncCreates: an unknown subject with a verified token gets one
// users row (SPEC §14: email only when verified or trusted and free,
// display_name from name else preferred_username, active, no grants) and an
// auth_sync_state row, and is then decided as a known user: the negative
// cache entry of the lookup just before does not keep it unknown.
func TestUserSyncCreates(t *testing.T) {
	t.Parallel()
	b := setup(t, withSync(nil))
	const iss = "https://auth.example.com/application/o/portal/"
	long := strings.Repeat("é", policy.MaxDisplayNameRunes+50)
	tests := []struct {
		name, sub string
		claims    map[string]any
		trust     bool
		email     string // "<NULL>" for NULL
		display   string
		lastError string
		source    string
		noUser    bool // not created: decided as unknown
	}{
		{name: "verified email and name", sub: "new-1",
			claims: map[string]any{"iss": iss, "email": "n1@example.com", "email_verified": true, "name": "New One", "preferred_username": "n1"},
			email:  "n1@example.com", display: "New One", lastError: "<NULL>", source: iss},
		{name: "unverified email (Authentik's default)", sub: "new-2",
			claims: map[string]any{"iss": iss, "email": "n2@example.com", "email_verified": false, "preferred_username": "n2"},
			email:  "<NULL>", display: "n2", lastError: "email: email_verified is not true", source: iss},
		{name: "unverified email, trusted", sub: "new-3", trust: true,
			claims: map[string]any{"iss": iss, "email": "n3@example.com", "name": "Three"},
			email:  "n3@example.com", display: "Three", lastError: "<NULL>", source: iss},
		{name: "email held by another user", sub: "new-4",
			claims: map[string]any{"iss": iss, "email": "alice@example.com", "email_verified": true, "name": "Not Alice"},
			email:  "<NULL>", display: "Not Alice", lastError: "email: held by another user", source: iss},
		{name: "wrong claim types", sub: "new-5",
			claims: map[string]any{"iss": 42.0, "email": 7.0, "email_verified": true, "name": map[string]any{"a": "b"}, "preferred_username": "five"},
			email:  "<NULL>", display: "five", lastError: "email: not a string; name: not a string; iss: not a string", source: "<NULL>"},
		{name: "NUL and controls", sub: "new-6",
			claims: map[string]any{"email": "x\x00@example.com", "email_verified": true, "name": "Six\x00", "preferred_username": "six\r\nX-Evil: 1"},
			email:  "<NULL>", display: "<NULL>", lastError: "email: contains control characters; name: contains control characters; preferred_username: contains control characters", source: "<NULL>"},
		{name: "long name truncated", sub: "new-7",
			claims: map[string]any{"name": long},
			email:  "<NULL>", display: long[:2*policy.MaxDisplayNameRunes], lastError: fmt.Sprintf("name: truncated to %d characters", policy.MaxDisplayNameRunes), source: "<NULL>"},
		{name: "no profile claims at all", sub: "new-8", claims: map[string]any{},
			email: "<NULL>", display: "<NULL>", lastError: "<NULL>", source: "<NULL>"},
		{name: "subject too long to store", sub: strings.Repeat("s", policy.MaxSubjectBytes+1), claims: map[string]any{"name": "x"}, noUser: true},
		{name: "subject with NUL", sub: "nul\x00sub", claims: map[string]any{"name": "x"}, noUser: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users := countUsers(t, b.db, "true")
			// The lookup before caches the subject as unknown.
			if u, err := b.store.LookupUser(context.Background(), tt.sub, time.Now()); u != nil || err != nil {
				t.Fatalf("LookupUser before = %v, %v; want unknown", u, err)
			}
			u, err := lookupAndSync(t, b.store, claimsFor(tt.sub, tt.claims, tt.trust))
			if err != nil {
				t.Fatal(err)
			}
			if tt.noUser {
				if u != nil {
					t.Fatalf("SyncUser = %+v, want nil (unknown)", u)
				}
				if n := countUsers(t, b.db, "true"); n != users {
					t.Fatalf("%d rows created", n-users)
				}
				return
			}
			if u == nil || !u.Active || u.Sub != tt.sub {
				t.Fatalf("SyncUser = %+v, want the new active user", u)
			}
			row, ok := readUser(t, b.db, tt.sub)
			if !ok {
				t.Fatal("no row")
			}
			want := userRow{id: u.ID, email: tt.email, name: tt.display, status: "active", active: true, synced: true, source: tt.source, lastError: tt.lastError}
			if row != want {
				t.Errorf("row = %+v\nwant  %+v", row, want)
			}
			// Known from now on, from the cache.
			again, err := b.store.LookupUser(context.Background(), tt.sub, time.Now())
			if err != nil || again == nil || again.ID != u.ID {
				t.Errorf("LookupUser after = %+v, %v; want the new user", again, err)
			}
		})
	}
	if got := metricValue(t, b.store, store.MetricSyncCreated); got != 8 {
		t.Errorf("%s = %v, want 8", store.MetricSyncCreated, got)
	}
	if !strings.Contains(b.logs.String(), "user sync could not create the user") {
		t.Errorf("the unstorable subjects were not logged; logs:\n%s", b.logs)
	}
}

// TestUserSyncOffOrNoProfile: with sync off, or claims without a profile
// (the engine's ProfileConfig off), SyncUser writes nothing.
func TestUserSyncOffOrNoProfile(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	c := claimsFor("nobody-new", map[string]any{"name": "N"}, false)
	if u, err := lookupAndSync(t, b.store, c); u != nil || err != nil {
		t.Errorf("sync off: %v, %v; want unknown", u, err)
	}
	on := setup(t, withSync(nil))
	if u, err := lookupAndSync(t, on.store, policy.Claims{Subject: "nobody-new"}); u != nil || err != nil {
		t.Errorf("no profile: %v, %v; want unknown", u, err)
	}
	for _, x := range []*pgBundle{b, on} {
		if n := countUsers(t, x.db, "authentik_sub = 'nobody-new'"); n != 0 {
			t.Errorf("%d rows created", n)
		}
	}
}

// twoGateways opens two stores with sync on over one database holding
// storetest.Basic; editB (if not nil) changes the second one's settings.
func twoGateways(t *testing.T, editB func(*store.PostgresConfig)) (*pgxpool.Pool, *store.Postgres, *store.Postgres) {
	t.Helper()
	db, dsn := pgtest.NewPool(t)
	pgtest.Exec(t, db, storetest.Basic().SQL())
	a, _ := openStore(t, dsn, withSync(nil))
	b, _ := openStore(t, dsn, edits(withSync(nil), editB))
	return db, a, b
}

// TestUserSyncRace: two gateways (two stores on one database), many
// requests each, race on one new subject: one row, and every request is
// decided as that known user.
func TestUserSyncRace(t *testing.T) {
	t.Parallel()
	db, a, b := twoGateways(t, nil)
	for round := range 5 {
		sub := fmt.Sprint("racer-", round)
		c := claimsFor(sub, map[string]any{"name": "Racer", "email": sub + "@example.com", "email_verified": true}, false)
		start := make(chan struct{})
		var wg sync.WaitGroup
		ids := make([]string, 16)
		errs := make([]error, 16)
		for i := range ids {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				u, err := lookupAndSync(t, s, c)
				if u != nil {
					ids[i] = u.ID
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		if n := countUsers(t, db, "authentik_sub = $1", sub); n != 1 {
			t.Fatalf("round %d: %d rows for %s, want 1", round, n, sub)
		}
		row, _ := readUser(t, db, sub)
		for i, id := range ids {
			if errs[i] != nil || id != row.id {
				t.Errorf("round %d, request %d: user %q, err %v; want %q", round, i, id, errs[i], row.id)
			}
		}
	}
	created := metricValue(t, a, store.MetricSyncCreated) + metricValue(t, b, store.MetricSyncCreated)
	if created != 5 {
		t.Errorf("created %v rows in all, want 5", created)
	}
}

// TestUserSyncEmailRace: two new subjects with one verified email, created
// at once on two gateways: both rows exist, one holds the email, the other
// has NULL and says why in last_error.
func TestUserSyncEmailRace(t *testing.T) {
	t.Parallel()
	db, a, b := twoGateways(t, nil)
	for round := range 5 {
		email := fmt.Sprint("shared-", round, "@example.com")
		subs := []string{fmt.Sprint("twin-a-", round), fmt.Sprint("twin-b-", round)}
		var wg sync.WaitGroup
		for i, s := range []*store.Postgres{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u, err := lookupAndSync(t, s, claimsFor(subs[i], map[string]any{"email": email, "email_verified": true}, false))
				if err != nil || u == nil {
					t.Errorf("%s: %v, %v", subs[i], u, err)
				}
			}()
		}
		wg.Wait()
		ra, _ := readUser(t, db, subs[0])
		rb, _ := readUser(t, db, subs[1])
		holder, other := ra, rb
		if rb.email == email {
			holder, other = rb, ra
		}
		if holder.email != email || holder.lastError != "<NULL>" || other.email != "<NULL>" || other.lastError != "email: held by another user" {
			t.Errorf("round %d: %+v and %+v; want one holding %s, the other NULL with the reason", round, ra, rb, email)
		}
	}
}

// TestUserSyncUpdateRefused: a database that refuses the background update
// counts and logs it; the request never saw it, and the row is unchanged.
func TestUserSyncUpdateRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, withSync(nil))
	pgtest.Exec(t, b.db, `CREATE FUNCTION refuse_updates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no updates here'; END $$;
CREATE TRIGGER refuse_updates BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION refuse_updates();`)
	u, err := lookupAndSync(t, b.store, claimsFor("alice", map[string]any{"name": "Alicia"}, false))
	if err != nil || u == nil || u.DisplayName != "Alice" {
		t.Fatalf("SyncUser = %+v, %v", u, err)
	}
	eventually(t, 5*time.Second, "the update failure counted", func() bool {
		return metricValue(t, b.store, store.MetricSyncUpdateFailures) == 1
	})
	if !strings.Contains(b.logs.String(), "no updates here") {
		t.Errorf("the failure was not logged; logs:\n%s", b.logs)
	}
	if r, _ := readUser(t, b.db, "alice"); r.name != "Alice" || r.synced {
		t.Errorf("alice = %+v; want unchanged, no auth_sync_state", r)
	}
}

// TestUserSyncFeed: a row one gateway creates reaches the other through
// the change feed (LISTEN scopegate_changes): its negative cache entry is
// dropped and the next lookup finds the user, without a restart.
func TestUserSyncFeed(t *testing.T) {
	t.Parallel()
	// b's negative entries would last a minute.
	_, a, b := twoGateways(t, func(c *store.PostgresConfig) { c.NegativeCacheTTL = time.Minute })
	ctx := context.Background()
	if u, err := b.LookupUser(ctx, "fed", time.Now()); u != nil || err != nil {
		t.Fatalf("b before: %v, %v", u, err)
	}
	u, err := lookupAndSync(t, a, claimsFor("fed", map[string]any{"name": "Fed"}, false))
	if err != nil || u == nil {
		t.Fatalf("a: %v, %v", u, err)
	}
	took := eventually(t, 5*time.Second, "b sees the user a created", func() bool {
		got, err := b.LookupUser(ctx, "fed", time.Now())
		return err == nil && got != nil && got.ID == u.ID
	})
	t.Logf("the other gateway knew the new user %v after it was created", took)
	if took > time.Second {
		t.Errorf("took %v, want within 1 s (SPEC §6)", took)
	}
}

// TestUserSyncRefusedWrite: a database that refuses the insert (here a
// trigger; a read-only replica or missing privilege alike) leaves the
// subject unknown (403 user_unknown at the proxy), logs the error once per
// subject per interval, and is not asked again within the negative TTL.
func TestUserSyncRefusedWrite(t *testing.T) {
	t.Parallel()
	// The three attempts below must fall within one negative TTL: 2 s
	// leaves a loaded machine room (the retry after it waits that long).
	b := setup(t, edits(withSync(nil), func(c *store.PostgresConfig) { c.NegativeCacheTTL = 2 * time.Second }))
	pgtest.Exec(t, b.db, `CREATE FUNCTION refuse_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'users are read-only here'; END $$;
CREATE TRIGGER refuse_users BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_users();`)
	c := claimsFor("refused", map[string]any{"name": "R"}, false)
	for i := range 3 {
		u, err := lookupAndSync(t, b.store, c)
		if u != nil || err != nil {
			t.Fatalf("attempt %d: %v, %v; want unknown (nil, nil)", i, u, err)
		}
	}
	if got := metricValue(t, b.store, store.MetricSyncCreateFailures); got != 1 {
		t.Errorf("%s = %v, want 1 (later attempts wait for the negative TTL)", store.MetricSyncCreateFailures, got)
	}
	// Past the negative TTL it is tried again, and refused again, but the
	// error is not logged again within the interval.
	eventually(t, 10*time.Second, "a second attempt", func() bool {
		u, err := lookupAndSync(t, b.store, c)
		if u != nil || err != nil {
			t.Fatalf("retry: %v, %v; want unknown", u, err)
		}
		return metricValue(t, b.store, store.MetricSyncCreateFailures) == 2
	})
	if n := strings.Count(b.logs.String(), "users are read-only here"); n != 1 {
		t.Errorf("the refusal was logged %d times, want once per interval; logs:\n%s", n, b.logs)
	}
	if n := countUsers(t, b.db, "authentik_sub = 'refused'"); n != 0 {
		t.Errorf("%d rows", n)
	}
}

// TestUserSyncFloodBounded: distinct new subjects beyond the creation rate
// are decided as unknown and counted; only the burst is created.
func TestUserSyncFloodBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, withSync(func(c *store.UserSyncConfig) { c.CreateRate = 0.001; c.CreateBurst = 3 }))
	created := 0
	for i := range 10 {
		u, err := lookupAndSync(t, b.store, claimsFor(fmt.Sprint("flood-", i), map[string]any{}, false))
		if err != nil {
			t.Fatal(err)
		}
		if u != nil {
			created++
		}
	}
	if created != 3 {
		t.Errorf("created %d users, want the burst of 3", created)
	}
	if n := countUsers(t, b.db, "authentik_sub LIKE 'flood-%'"); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
	if got := metricValue(t, b.store, store.MetricSyncCreateLimited); got != 7 {
		t.Errorf("%s = %v, want 7", store.MetricSyncCreateLimited, got)
	}
}

// TestUserSyncUpdatesKnownUsers: a known user's changed name and email are
// written in the background (never status, is_active or grants), with
// auth_sync_state; a change within the interval waits; an email another
// user holds is kept out and said in last_error; a claim with nothing
// usable never clears a column.
func TestUserSyncUpdatesKnownUsers(t *testing.T) {
	t.Parallel()
	b := setup(t, withSync(nil))
	const iss = "https://auth.example.com/"
	before, _ := readUser(t, b.db, "bob") // inactive, with a grant
	u, err := lookupAndSync(t, b.store, claimsFor("bob", map[string]any{
		"iss": iss, "name": "Robert", "email": "robert@example.com", "email_verified": true}, false))
	if err != nil || u == nil || u.DisplayName != "Bob" {
		t.Fatalf("SyncUser = %+v, %v; want bob as he was (the write is asynchronous)", u, err)
	}
	eventually(t, 5*time.Second, "bob's new name written", func() bool {
		r, _ := readUser(t, b.db, "bob")
		return r.name == "Robert"
	})
	row, _ := readUser(t, b.db, "bob")
	want := userRow{id: before.id, email: "robert@example.com", name: "Robert", status: "active", active: false,
		synced: true, source: iss, lastError: "<NULL>", grants: before.grants}
	if row != want || before.grants == 0 {
		t.Errorf("bob = %+v\nwant  %+v", row, want)
	}
	// The feed evicts bob: the next lookup has the new row.
	eventually(t, 5*time.Second, "bob reloaded", func() bool {
		u, _ := b.store.LookupUser(context.Background(), "bob", time.Now())
		return u != nil && u.DisplayName == "Robert" && !u.Active
	})
	// Within the interval, another change waits.
	if _, err := lookupAndSync(t, b.store, claimsFor("bob", map[string]any{"name": "Bobby"}, false)); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, b.store, store.MetricSyncQueued); got != 1 {
		t.Errorf("%s = %v, want 1 (once per interval per user)", store.MetricSyncQueued, got)
	}

	// carol: an email alice holds, and a new name; an unverified email
	// claim later never clears the column.
	if _, err := lookupAndSync(t, b.store, claimsFor("carol", map[string]any{
		"name": "Caroline", "email": "alice@example.com", "email_verified": true}, false)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "carol synced", func() bool {
		r, _ := readUser(t, b.db, "carol")
		return r.synced
	})
	row, _ = readUser(t, b.db, "carol")
	if row.name != "Caroline" || row.email != "<NULL>" || row.lastError != "email: held by another user" {
		t.Errorf("carol = %+v", row)
	}
	alice, _ := readUser(t, b.db, "alice")
	if alice.email != "alice@example.com" {
		t.Errorf("alice's email changed: %+v", alice)
	}
}

// TestUserSyncQueueFullDrops: while the writer is stuck (users locked), a
// full queue drops updates (counted) and SyncUser still returns at once.
func TestUserSyncQueueFullDrops(t *testing.T) {
	t.Parallel()
	b := setup(t, withSync(func(c *store.UserSyncConfig) { c.QueueSize = 1; c.BatchSize = 1 }))
	ctx := context.Background()
	// Warm the three users first (the lock would block their loads).
	users := map[string]*policy.User{}
	for _, sub := range []string{"alice", "bob", "carol"} {
		u, err := b.store.LookupUser(ctx, sub, time.Now())
		if err != nil || u == nil {
			t.Fatal(sub, u, err)
		}
		users[sub] = u
	}
	release := lockUsers(t, b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, sub := range []string{"alice", "bob", "carol"} {
			if _, err := b.store.SyncUser(ctx, users[sub], claimsFor(sub, map[string]any{"name": "Renamed " + sub}, false), time.Now()); err != nil {
				t.Error(err)
			}
			if sub == "alice" {
				// The writer takes alice's update and blocks on the lock.
				eventually(t, 5*time.Second, "writer busy", func() bool {
					return metricValue(t, b.store, store.MetricSyncQueued) == 1
				})
				eventually(t, 5*time.Second, "writer waiting on the lock", func() bool {
					var waiting bool
					err := b.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%auth_sync_state%')`).Scan(&waiting)
					return err == nil && waiting
				})
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SyncUser blocked on a full queue")
	}
	if got := metricValue(t, b.store, store.MetricSyncDropped); got != 1 {
		t.Errorf("%s = %v, want 1 (alice in the writer, bob queued, carol dropped)", store.MetricSyncDropped, got)
	}
	release()
	eventually(t, 5*time.Second, "alice and bob written", func() bool {
		a, _ := readUser(t, b.db, "alice")
		bb, _ := readUser(t, b.db, "bob")
		return a.name == "Renamed alice" && bb.name == "Renamed bob"
	})
	if c, _ := readUser(t, b.db, "carol"); c.name != "<NULL>" {
		t.Errorf("carol = %+v; her update was dropped", c)
	}
}

// TestLookupUserUnstorableSubject: a subject PostgreSQL text cannot hold
// is unknown, not a store failure.
func TestLookupUserUnstorableSubject(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, sub := range []string{"a\x00b", "\xff\xfe"} {
		if u, err := b.store.LookupUser(context.Background(), sub, time.Now()); u != nil || err != nil {
			t.Errorf("LookupUser(%q) = %v, %v; want unknown", sub, u, err)
		}
	}
}

// TestUserSyncCreateUnavailable: an insert that cannot finish (the table
// locked past UserLoadTimeout, as a database that stopped answering) is
// ErrUnavailable (503 store_unavailable), not a refusal: nothing is
// remembered as failed, and the next attempt creates the user.
func TestUserSyncCreateUnavailable(t *testing.T) {
	t.Parallel()
	b := setup(t, edits(withSync(nil), func(c *store.PostgresConfig) { c.UserLoadTimeout = time.Second }))
	c := claimsFor("late", map[string]any{"name": "Late"}, false)
	release := lockUsers(t, b)
	if u, err := b.store.SyncUser(context.Background(), nil, c, time.Now()); u != nil || !isUnavailable(err) {
		t.Errorf("SyncUser with users locked = %v, %v; want ErrUnavailable", u, err)
	}
	release()
	if got := metricValue(t, b.store, store.MetricSyncCreateFailures); got != 0 {
		t.Errorf("%s = %v, want 0 (not a refusal)", store.MetricSyncCreateFailures, got)
	}
	// A loaded machine may time a lookup out too: only a refusal would be
	// remembered, so some attempt creates the user.
	eventually(t, 10*time.Second, "the user created after the lock", func() bool {
		u, err := lookupAndSync(t, b.store, c)
		return err == nil && u != nil
	})
}

// TestUserSyncCloseWritesQueued: Close writes the updates still waiting
// (here held by a batch window longer than the test).
func TestUserSyncCloseWritesQueued(t *testing.T) {
	t.Parallel()
	b := setup(t, withSync(func(c *store.UserSyncConfig) { c.BatchWindow = time.Hour }))
	if _, err := lookupAndSync(t, b.store, claimsFor("carol", map[string]any{"name": "Carol at close"}, false)); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, b.store, store.MetricSyncQueued); got != 1 {
		t.Fatalf("%s = %v, want 1", store.MetricSyncQueued, got)
	}
	if r, _ := readUser(t, b.db, "carol"); r.name != "<NULL>" {
		t.Fatalf("carol written before Close: %+v", r)
	}
	if err := b.store.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r, _ := readUser(t, b.db, "carol"); r.name != "Carol at close" || !r.synced {
		t.Errorf("after Close carol = %+v; want the queued name written", r)
	}
}
