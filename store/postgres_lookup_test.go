package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

func TestPostgresSnapshotLoad(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	now := time.Now()
	fx := storetest.Basic()
	for _, rec := range fx.Clients {
		t.Run(rec.ClientKey, func(t *testing.T) {
			c, err := b.store.LookupClient(rec.ClientKey, now)
			if err != nil || c == nil {
				t.Fatalf("LookupClient(%q) = %v, %v", rec.ClientKey, c, err)
			}
			got := c.Record()
			if got.ID != rec.ID || got.Status != rec.Status || got.APIKeyHash != rec.APIKeyHash ||
				!slices.Equal(got.AllowedPaths, nilIfEmpty(rec.AllowedPaths)) ||
				!slices.Equal(got.AllowedIPs, nilIfEmpty(rec.AllowedIPs)) ||
				!slices.Equal(got.AllowedOrigins, nilIfEmpty(rec.AllowedOrigins)) {
				t.Errorf("LookupClient(%q).Record() = %+v, want %+v", rec.ClientKey, got, rec)
			}
			if c.Active != (rec.Status == "active") {
				t.Errorf("Active = %v for status %q", c.Active, rec.Status)
			}
			wantRate := -1
			if rec.RateLimitPerMin != nil {
				wantRate = *rec.RateLimitPerMin
			}
			if c.RateLimitPerMin != wantRate {
				t.Errorf("RateLimitPerMin = %d, want %d", c.RateLimitPerMin, wantRate)
			}
			if (rec.ExpiresAt == nil) != c.ExpiresAt.IsZero() || (rec.ExpiresAt != nil && !c.ExpiresAt.Equal(*rec.ExpiresAt)) {
				t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, rec.ExpiresAt)
			}
		})
	}
	if c, err := b.store.LookupClient("nope", now); c != nil || err != nil {
		t.Errorf("LookupClient(unknown) = %v, %v; want nil, nil", c, err)
	}
	if n := b.store.Clients(); n != len(fx.Clients) {
		t.Errorf("Clients() = %d, want %d", n, len(fx.Clients))
	}
	dir, err := b.store.Directory(now)
	if err != nil {
		t.Fatal(err)
	}
	if s := dir.Site("acme-hq"); s == nil || s.ID != "33333333-0000-4000-8000-000000000001" {
		t.Errorf("Directory().Site(acme-hq) = %+v", s)
	}
	if m := dir.Module("legacy"); m == nil {
		t.Errorf("Directory().Module(legacy) = nil")
	}
}

func nilIfEmpty(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// TestPostgresMalformedEntries: bad CIDRs, non-string entries, a list that
// is not an array, and an unknown enum label load without crashing, are
// logged once with the client_key, and never match.
func TestPostgresMalformedEntries(t *testing.T) {
	t.Parallel()
	db, dsn := pgtest.NewPool(t)
	pgtest.Exec(t, db, "ALTER TYPE client_status ADD VALUE 'paused'")
	pgtest.Exec(t, db, `INSERT INTO api_clients (client_key, name, status, api_key_hash, allowed_ips, allowed_paths, allowed_origins)
VALUES ('bad', 'bad', 'paused', 'sha256:zz', '["10.0.0.0/33", 42, {"a": 1}, "192.168.0.1"]', '"GET /api/**"', '[null, "https://ok.example.com", "https://bad\\u0000.example.com"]')`)
	pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "good", AllowedIPs: []string{"10.0.0.0/8"}})
	s, logs := openStore(t, dsn, func(c *store.PostgresConfig) { c.ReloadInterval = 100 * time.Millisecond })

	c, err := s.LookupClient("bad", time.Now())
	if err != nil || c == nil {
		t.Fatalf("LookupClient(bad) = %v, %v", c, err)
	}
	rec := c.Record()
	tests := []struct {
		name      string
		got, want []string
	}{
		{"allowed_ips", rec.AllowedIPs, []string{"10.0.0.0/33", "42", `{"a": 1}`, "192.168.0.1"}},
		{"allowed_paths (not an array)", rec.AllowedPaths, []string{`"GET /api/**"`}},
		{"allowed_origins", rec.AllowedOrigins, []string{"null", "https://ok.example.com", `https://bad\u0000.example.com`}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if c.Active || rec.Status != "paused" {
		t.Errorf("status %q: Active = %v, want inactive", rec.Status, c.Active)
	}
	if g, _ := s.LookupClient("good", time.Now()); g == nil {
		t.Errorf("a good client next to a bad one did not load")
	}
	countBad := func() int { return strings.Count(logs.String(), `"client_key":"bad"`) }
	first := countBad()
	if first == 0 {
		t.Fatalf("malformed entries of client bad were not logged; logs:\n%s", logs)
	}
	// Several periodic full reloads later, nothing is logged again.
	before := metricValue(t, s, store.MetricReloads)
	eventually(t, 5*time.Second, "three full reloads", func() bool { return metricValue(t, s, store.MetricReloads) >= before+3 })
	if n := countBad(); n != first {
		t.Errorf("malformed entries logged %d times after reloads, want %d (once)", n, first)
	}
	if strings.Contains(logs.String(), "sha256:zz") {
		t.Errorf("logs contain the api_key_hash")
	}
}

func TestPostgresLookupUser(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	// A legacy grant by key and one by id for carol, and one for a module of
	// the legacy table only.
	var carolID string
	if err := b.db.QueryRow(ctx, "SELECT id::text FROM users WHERE authentik_sub = 'carol'").Scan(&carolID); err != nil {
		t.Fatal(err)
	}
	pgtest.InsertLegacyGrant(t, b.db, carolID, "site", "acme-hq", "inventory", "view")
	pgtest.InsertLegacyGrant(t, b.db, carolID, "company", "11111111-0000-4000-8000-000000000001", "reports", "view")
	time.Sleep(50 * time.Millisecond) // let the feed settle; carol is not cached yet anyway

	const (
		acme   = "11111111-0000-4000-8000-000000000001"
		acmeHQ = "33333333-0000-4000-8000-000000000001"
	)
	tests := []struct {
		sub    string
		found  bool
		active bool
		grants []policy.GrantRecord
	}{
		{"alice", true, true, []policy.GrantRecord{
			{Module: "billing", Action: "manage", ScopeType: "site", ScopeID: acmeHQ},
			{Module: "inventory", Action: "update", ScopeType: "site", ScopeID: acmeHQ},
			{Module: "inventory", Action: "view", ScopeType: "company", ScopeID: acme},
		}},
		{"bob", true, false, []policy.GrantRecord{
			{Module: "inventory", Action: "view", ScopeType: "company", ScopeID: acme},
		}},
		{"carol", true, true, []policy.GrantRecord{
			{Module: "inventory", Action: "view", ScopeType: "site", ScopeID: "acme-hq", Legacy: true},
			{Module: "reports", Action: "view", ScopeType: "company", ScopeID: acme, Legacy: true},
		}},
		{"nobody", false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.sub, func(t *testing.T) {
			u, err := b.store.LookupUser(ctx, tt.sub, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if (u != nil) != tt.found {
				t.Fatalf("LookupUser(%q) = %v, want found %v", tt.sub, u, tt.found)
			}
			if u == nil {
				return
			}
			if u.Sub != tt.sub || u.Active != tt.active {
				t.Errorf("LookupUser(%q) = sub %q active %v, want active %v", tt.sub, u.Sub, u.Active, tt.active)
			}
			got := slices.Clone(u.Grants())
			sortGrants(got)
			if !slices.Equal(got, tt.grants) {
				t.Errorf("LookupUser(%q).Grants() = %+v\nwant %+v", tt.sub, got, tt.grants)
			}
		})
	}
	t.Run("legacy off", func(t *testing.T) {
		s, _ := openStore(t, b.dsn, func(c *store.PostgresConfig) { c.LegacyPermissions = false })
		u, err := s.LookupUser(ctx, "carol", time.Now())
		if err != nil || u == nil || len(u.Grants()) != 0 {
			t.Errorf("LookupUser(carol) without legacy = %v, %v; want no grants", u, err)
		}
	})
}

func sortGrants(g []policy.GrantRecord) {
	slices.SortFunc(g, func(a, b policy.GrantRecord) int {
		return strings.Compare(a.Module+a.Action+a.ScopeType+a.ScopeID, b.Module+b.Action+b.ScopeType+b.ScopeID)
	})
}

// TestPostgresUserCache: a second lookup is a cache hit, unknown subjects
// are negatively cached, and entries expire after their TTL.
func TestPostgresUserCache(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *store.PostgresConfig) {
		c.CacheTTL = 300 * time.Millisecond
		c.NegativeCacheTTL = 200 * time.Millisecond
	})
	ctx := context.Background()
	now := time.Now()
	hits := func() float64 { return metricValue(t, b.store, store.MetricCacheHits) }
	misses := func() float64 { return metricValue(t, b.store, store.MetricCacheMisses) }
	steps := []struct {
		sub                  string
		at                   time.Duration
		wantFound            bool
		wantHits, wantMisses float64
	}{
		{"alice", 0, true, 0, 1},
		{"alice", 100 * time.Millisecond, true, 1, 1},
		{"ghost", 0, false, 1, 2},
		{"ghost", 100 * time.Millisecond, false, 2, 2}, // negative entry
		{"ghost", 250 * time.Millisecond, false, 2, 3}, // negative TTL over
		{"alice", 350 * time.Millisecond, true, 2, 4},  // positive TTL over
	}
	for i, st := range steps {
		u, err := b.store.LookupUser(ctx, st.sub, now.Add(st.at))
		if err != nil || (u != nil) != st.wantFound {
			t.Fatalf("step %d: LookupUser(%q) = %v, %v; want found %v", i, st.sub, u, err, st.wantFound)
		}
		if h, m := hits(), misses(); h != st.wantHits || m != st.wantMisses {
			t.Errorf("step %d (%s at +%v): hits %v misses %v, want %v %v", i, st.sub, st.at, h, m, st.wantHits, st.wantMisses)
		}
	}
}

// TestPostgresUnknownEnumLabels: a live database may have enum labels the
// snapshot does not list; they load as text and count as not active.
func TestPostgresUnknownEnumLabels(t *testing.T) {
	t.Parallel()
	db, dsn := pgtest.NewPool(t)
	for _, sql := range []string{
		"ALTER TYPE record_status ADD VALUE 'archived'",
		"ALTER TYPE permission_action ADD VALUE 'export'",
	} {
		pgtest.Exec(t, db, sql)
	}
	uid := pgtest.InsertUser(t, db, pgtest.User{Sub: "arch", Status: "archived"})
	mid := pgtest.InsertModule(t, db, "reports", "archived")
	cid := pgtest.InsertCompany(t, db, "acme", "archived")
	pgtest.InsertGrant(t, db, uid, mid, "export", "company", cid)
	s, _ := openStore(t, dsn, nil)

	u, err := s.LookupUser(context.Background(), "arch", time.Now())
	if err != nil || u == nil {
		t.Fatalf("LookupUser(arch) = %v, %v", u, err)
	}
	if u.Active {
		t.Errorf("user with status 'archived' is active")
	}
	if g := u.Grants(); len(g) != 1 || g[0].Action != "export" || g[0].Module != "reports" {
		t.Errorf("Grants() = %+v, want the export grant on reports", g)
	}
	dir, err := s.Directory(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m := dir.Module("reports"); m == nil || m.Active {
		t.Errorf("Directory().Module(reports) = %+v, want inactive (archived)", m)
	}
}

// TestPostgresDirectoryChangeRecompilesCachedUser: a directory change does
// not send cached users back to the database; they are recompiled against
// the new directory on their next lookup.
func TestPostgresDirectoryChangeRecompilesCachedUser(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	before, err := b.store.LookupUser(ctx, "alice", time.Now())
	if err != nil || before == nil {
		t.Fatalf("LookupUser(alice) = %v, %v", before, err)
	}
	misses := metricValue(t, b.store, store.MetricCacheMisses)
	pgtest.InsertModule(t, b.db, "reports", "")
	eventually(t, time.Second, "new module visible", func() bool {
		d, err := b.store.Directory(time.Now())
		return err == nil && d.Module("reports") != nil
	})
	after, err := b.store.LookupUser(ctx, "alice", time.Now())
	if err != nil || after == nil {
		t.Fatalf("LookupUser(alice) = %v, %v", after, err)
	}
	if after == before {
		t.Errorf("LookupUser after a directory change returned the user compiled against the old directory")
	}
	if m := metricValue(t, b.store, store.MetricCacheMisses); m != misses {
		t.Errorf("cache misses %v -> %v: a directory change sent the user back to the database", misses, m)
	}
	if again, _ := b.store.LookupUser(ctx, "alice", time.Now()); again != after {
		t.Errorf("the recompiled user was not cached")
	}
}

// TestPostgresConcurrentMissesShareOneLoad: simultaneous lookups of an
// uncached subject share one load and get the same user.
func TestPostgresConcurrentMissesShareOneLoad(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const n = 32
	users := make([]*policy.User, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			users[i], errs[i] = b.store.LookupUser(context.Background(), "alice", time.Now())
		}()
	}
	close(start)
	wg.Wait()
	for i := range users {
		if errs[i] != nil || users[i] == nil || users[i] != users[0] {
			t.Fatalf("lookup %d = %p, %v; want the shared %p", i, users[i], errs[i], users[0])
		}
	}
}

// TestPostgresUserLoadTimeout: a user load the database does not answer is
// bounded by UserLoadTimeout, not ConnectTimeout, for the request that
// started it and for those waiting on it; each gets ErrUnavailable, the
// failure is not cached, and the next lookup after the database answers
// again loads the user.
func TestPostgresUserLoadTimeout(t *testing.T) {
	t.Parallel()
	b := setupUserLoadTimeout(t, 300*time.Millisecond)
	ctx := context.Background()
	release := lockUsers(t, b)
	type result struct {
		u   *policy.User
		err error
	}
	const n = 4
	results := make(chan result, n)
	for range n {
		go func() {
			u, err := b.store.LookupUser(ctx, "alice", time.Now())
			results <- result{u, err}
		}()
	}
	for i := range n {
		select {
		case r := <-results:
			if !errors.Is(r.err, store.ErrUnavailable) || r.u != nil {
				t.Errorf("lookup %d with users locked = %p, %v; want nil, ErrUnavailable", i, r.u, r.err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("lookup %d still waiting after 20s: not bounded by UserLoadTimeout (300ms)", i)
		}
	}
	release()
	// The cancelled queries closed their connections, so the next load may
	// need a new one: retry within the timeout until it lands.
	eventually(t, 10*time.Second, "loading alice after the lock was released", func() bool {
		u, err := b.store.LookupUser(ctx, "alice", time.Now())
		return err == nil && u != nil
	})
}

// TestPostgresReloadKeepsUsersToFallBackOn: a full reload (as after a
// reconnect) makes cached users reload on their next lookup, but keeps them:
// when the database then fails to answer that reload, the cached user keeps
// serving (SPEC §6) instead of a 503, while a subject never cached gets
// ErrUnavailable; once the database answers, the user is reloaded.
func TestPostgresReloadKeepsUsersToFallBackOn(t *testing.T) {
	t.Parallel()
	b := setupUserLoadTimeout(t, 300*time.Millisecond)
	ctx := context.Background()
	before, err := b.store.LookupUser(ctx, "alice", time.Now())
	if err != nil || before == nil {
		t.Fatalf("LookupUser(alice) = %v, %v", before, err)
	}
	if err := b.store.Reload(); err != nil {
		t.Fatal(err)
	}
	release := lockUsers(t, b)
	misses := func() float64 { return metricValue(t, b.store, store.MetricCacheMisses) }
	m0 := misses()
	if u, err := b.store.LookupUser(ctx, "alice", time.Now()); err != nil || u == nil || u.ID != before.ID {
		t.Errorf("alice after a reload, database not answering = %v, %v; want the cached alice", u, err)
	}
	if misses() != m0+1 {
		t.Errorf("the lookup after a reload did not try the database (misses %v → %v)", m0, misses())
	}
	if u, err := b.store.LookupUser(ctx, "never-cached", time.Now()); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("an uncached subject, database not answering = %v, %v; want ErrUnavailable", u, err)
	}
	release()
	// Once the database answers, alice is reloaded into a fresh entry: the
	// lookup after that is a hit.
	eventually(t, 10*time.Second, "alice reloaded once the database answers", func() bool {
		m := misses()
		u, err := b.store.LookupUser(ctx, "alice", time.Now())
		if err != nil || u == nil {
			return false
		}
		_, _ = b.store.LookupUser(ctx, "alice", time.Now())
		return misses() == m+1
	})
}

// TestPostgresFallbackBounds: the cached entry a failed reload falls back
// on serves no longer than the stale TTL counted from its load, and not at
// all once a change notification evicted it during the failed load (the
// user is then known to have changed).
func TestPostgresFallbackBounds(t *testing.T) {
	t.Parallel()
	b := setupUserLoadTimeout(t, time.Second)
	ctx := context.Background()
	if u, err := b.store.LookupUser(ctx, "alice", time.Now()); err != nil || u == nil {
		t.Fatalf("LookupUser(alice) = %v, %v", u, err)
	}
	var aliceID string
	if err := b.db.QueryRow(ctx, `SELECT id FROM users WHERE authentik_sub = 'alice'`).Scan(&aliceID); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Reload(); err != nil {
		t.Fatal(err)
	}
	lockUsers(t, b) // held to the end of the test
	// Past the stale TTL counted from the load: no fallback.
	if u, err := b.store.LookupUser(ctx, "alice", time.Now().Add(5*time.Minute+time.Second)); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("alice, reload failing, past the stale TTL since her load = %v, %v; want ErrUnavailable", u, err)
	}
	// A grant removed while the reload waits: the notification evicts her,
	// so the failed reload must not fall back on the old entry.
	type result struct {
		u   *policy.User
		err error
	}
	done := make(chan result, 1)
	go func() {
		u, err := b.store.LookupUser(ctx, "alice", time.Now())
		done <- result{u, err}
	}()
	eventually(t, 10*time.Second, "the lookup's load waiting for users", func() bool {
		var waiting bool
		err := b.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'users'::regclass AND NOT granted)`).Scan(&waiting)
		return err == nil && waiting
	})
	if _, err := b.db.Exec(ctx, `DELETE FROM user_scope_permissions WHERE user_id = $1`, aliceID); err != nil {
		t.Fatal(err)
	}
	if r := <-done; !errors.Is(r.err, store.ErrUnavailable) {
		t.Errorf("alice evicted during a failed reload = %v, %v; want ErrUnavailable", r.u, r.err)
	}
}

// setupUserLoadTimeout is setup with user loads bounded by timeout and a
// connect timeout far longer, so a test sees which one bounds a load.
func setupUserLoadTimeout(t *testing.T, timeout time.Duration) *pgBundle {
	t.Helper()
	return setup(t, func(c *store.PostgresConfig) {
		c.ConnectTimeout = 60 * time.Second
		c.UserLoadTimeout = timeout
		c.StaleTTL = 5 * time.Minute // the bound TestPostgresFallbackBounds steps past
	})
}

// lockUsers holds an ACCESS EXCLUSIVE lock on users, so user loads wait
// (and time out), until release is called or the test ends.
func lockUsers(t *testing.T, b *pgBundle) (release func()) {
	t.Helper()
	ctx := context.Background()
	lock, err := b.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Rollback(ctx) })
	if _, err := lock.Exec(ctx, "LOCK TABLE users IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := lock.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPostgresUserLoadAfterKilledConnections: pooled connections killed
// while the database stays up (a failover, pg_terminate_backend, an idle
// timeout in a pooler) cost a user lookup nothing: the load is read-only
// and runs again on a fresh connection, so a user not in cache is not
// answered 503 store_unavailable while the database can answer.
func TestPostgresUserLoadAfterKilledConnections(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *store.PostgresConfig) { c.MaxConns = 4 })
	ctx := context.Background()
	subs := []string{"alice", "bob", "carol"}
	for round, sub := range subs {
		// Use every pooled connection, so none is idle long enough for
		// pgxpool to check it before handing it out.
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Distinct names: concurrent loads of one name share one
				// query (and one connection).
				_, _ = b.store.LookupUser(ctx, fmt.Sprint("warm-", sub, i), time.Now())
			}()
		}
		wg.Wait()
		var killed int
		if err := b.db.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'scopegate') t`).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatalf("round %d: no pooled connection to kill", round)
		}
		u, err := b.store.LookupUser(ctx, sub, time.Now())
		if err != nil || u == nil {
			t.Fatalf("round %d: LookupUser(%s) after %d pooled connections were killed = %v, %v; want the user",
				round, sub, killed, u, err)
		}
	}
}
