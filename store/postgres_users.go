package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scopegate/scopegate/policy"
)

// userEntry is a cached lookup: a compiled user, or nil for an unknown
// subject. It stays in the cache past fresh (until CacheTTL + StaleTTL) so
// it can keep serving while the database is unreachable. It keeps the rows
// it was compiled from, so a directory change recompiles it without a
// database round trip.
type userEntry struct {
	user   *policy.User
	rec    policy.UserRecord
	grants []policy.GrantRecord
	dir    *policy.Directory // the directory user was compiled against
	fresh  int64             // unix nanoseconds until which the entry is fresh
	epoch  uint64            // userEpoch when the load began: fresh only while it holds
	loaded int64             // unix nanoseconds of the load
}

// LookupUser returns the user with this authentik_sub, nil when unknown. A
// fresh cache entry answers without the database and without allocating;
// unknown subjects are cached too (NegativeCacheTTL). While the database is
// unreachable, or when it fails to answer the reload of an entry that is no
// longer fresh, the cached entry keeps answering for the stale TTL (SPEC
// §6: what was known keeps serving); a subject not in the cache, or any
// lookup past the stale TTL, gets [ErrUnavailable]. Concurrent misses for
// one subject share one query, bounded by UserLoadTimeout; ctx gives its
// values, not its cancellation. Credentials are cached, never decisions.
func (s *Postgres) LookupUser(ctx context.Context, sub string, now time.Time) (*policy.User, error) {
	if !s.loaded.Load() || s.stale(now) {
		return nil, ErrUnavailable
	}
	var known *userEntry
	if v, ok := s.users.Get(sub); ok {
		e := v.(*userEntry)
		current := e.epoch == s.userEpoch.Load()
		fresh := current && now.UnixNano() < e.fresh
		fallback := s.down.Load() && (current || s.withinStale(e, now))
		if fresh || fallback {
			s.m.userHits.Inc()
			return s.serveEntry(sub, e), nil
		}
		known = e
	}
	s.m.userMisses.Inc()
	if s.down.Load() {
		return nil, ErrUnavailable
	}
	if strings.IndexByte(sub, 0) >= 0 || !utf8.ValidString(sub) {
		// PostgreSQL text holds neither: no row can match, and the query
		// would fail (a 503 for what is an unknown subject).
		return nil, nil
	}
	u, err := s.loadShared(ctx, sub, now)
	if err != nil && known != nil && s.withinStale(known, now) { // every load error is ErrUnavailable
		// A database that blips (a reconnect, then a failed reload) must
		// not deny what it was known to allow, unless a notification
		// evicted the entry meanwhile (it is known to have changed).
		if v, ok := s.users.Get(sub); ok && sameLoad(v.(*userEntry), known) {
			return s.serveEntry(sub, known), nil
		}
	}
	return u, err
}

// sameLoad reports whether a and b come from the same load: a recompile
// against a newer directory copies the entry, an eviction or reload does not
// leave it.
func sameLoad(a, b *userEntry) bool {
	return a.loaded == b.loaded && a.epoch == b.epoch
}

// withinStale reports whether e was loaded at most StaleTTL before now, so
// what it says may still serve when the database cannot answer. Entries of
// the current epoch need no such check while the database is down: the
// store-wide stale TTL (stale, from lastOK) bounds them, since they were
// loaded while it was reachable. The bound here is for entries from before
// a reconnect, and for the fallback of a reload that failed while the
// store counts as up: an entry from before a reconnect may have missed a
// change, and serves no longer than the stale TTL counted from its load.
func (s *Postgres) withinStale(e *userEntry, now time.Time) bool {
	return now.UnixNano()-e.loaded <= int64(s.cfg.StaleTTL)
}

// serveEntry returns e's user, recompiled first when the directory changed
// since it was compiled.
func (s *Postgres) serveEntry(sub string, e *userEntry) *policy.User {
	if dir := s.dir.Load(); e.user != nil && e.dir != dir {
		return s.recompile(sub, e, dir)
	}
	return e.user
}

// recompile compiles a cached user against a newer directory and caches the
// result unless the entry was replaced or evicted meanwhile.
func (s *Postgres) recompile(sub string, e *userEntry, dir *policy.Directory) *policy.User {
	ne := *e
	ne.user = policy.CompileUser(e.rec, e.grants, dir)
	ne.dir = dir
	s.userMu.Lock()
	if v, exp, ok := s.users.GetWithExpiration(sub); ok && v.(*userEntry) == e {
		s.users.Set(sub, &ne, time.Until(exp))
	}
	s.userMu.Unlock()
	return ne.user
}

// loadShared runs loadUser once per subject at a time: concurrent misses of
// one subject wait for the same load (x/sync/singleflight). The query runs
// detached from ctx's cancellation, so one cancelled request does not fail
// the others sharing it, and is bounded by UserLoadTimeout, which so bounds
// every caller's wait. A panic in the load reaches every caller sharing it
// (the proxy answers each 500) and leaves no load registered.
func (s *Postgres) loadShared(ctx context.Context, sub string, now time.Time) (*policy.User, error) {
	v, err, _ := s.loads.Do(sub, func() (any, error) {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.UserLoadTimeout)
		defer cancel()
		return s.loadUser(qctx, sub, now)
	})
	u, _ := v.(*policy.User)
	return u, err
}

// loadUser reads the user and every grant in one round trip, compiles and
// caches the result unless an eviction raced the read.
func (s *Postgres) loadUser(ctx context.Context, sub string, now time.Time) (*policy.User, error) {
	gen, epoch := s.userGen.Load(), s.userEpoch.Load()
	dir := s.dir.Load()
	var (
		rec    *policy.UserRecord
		grants []policy.GrantRecord
		err    error
	)
	// The batch only reads, so it can run again: once, on a fresh
	// connection, when the pooled one it got had been killed while the
	// database stays up (a failover, pg_terminate_backend, a pooler's idle
	// timeout). pgxpool only checks connections idle for a while before
	// handing them out.
	// A fresh batch each time: a sent one keeps the statement descriptions
	// of the connection it went out on.
	for attempt := 0; attempt < 2; attempt++ {
		b := &pgx.Batch{}
		b.Queue(sqlUserBySub, sub)
		b.Queue(sqlGrantsBySub, sub)
		if s.cfg.LegacyPermissions {
			b.Queue(sqlLegacyBySub, sub)
		}
		br := s.pool.SendBatch(ctx, b)
		rec, grants, err = readUserBatch(br, s.cfg.LegacyPermissions)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err == nil || !connectionLost(ctx, err) || attempt > 0 {
			break
		}
		// What killed this connection (a failover, a restart, a pooler)
		// likely killed its pooled siblings too: start the retry, and
		// later loads, on fresh ones.
		s.pool.Reset()
	}
	if err != nil {
		s.m.storeErrors.Inc()
		return nil, fmt.Errorf("%w: loading user: %v", ErrUnavailable, err)
	}
	e := &userEntry{fresh: now.Add(s.cfg.NegativeCacheTTL).UnixNano(), dir: dir, epoch: epoch, loaded: now.UnixNano()}
	if rec != nil {
		e.rec, e.grants = *rec, grants
		e.user = policy.CompileUser(*rec, grants, dir)
		e.fresh = now.Add(s.cfg.CacheTTL).UnixNano()
	}
	s.userMu.Lock()
	if s.userGen.Load() == gen {
		s.users.Set(sub, e, time.Duration(e.fresh-now.UnixNano())+s.cfg.StaleTTL)
		if rec != nil {
			s.idToSub[rec.ID] = sub
		}
	}
	s.userMu.Unlock()
	return e.user, nil
}

func readUserBatch(br pgx.BatchResults, legacy bool) (*policy.UserRecord, []policy.GrantRecord, error) {
	var u policy.UserRecord
	err := br.QueryRow().Scan(&u.ID, &u.Sub, &u.Email, &u.DisplayName, &u.Status, &u.IsActive)
	found := true
	if errors.Is(err, pgx.ErrNoRows) {
		found = false
	} else if err != nil {
		return nil, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	grants, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.GrantRecord, error) {
		var g policy.GrantRecord
		err := r.Scan(&g.Module, &g.Action, &g.ScopeType, &g.ScopeID)
		return g, err
	})
	if err != nil {
		return nil, nil, err
	}
	if legacy {
		rows, err := br.Query()
		if err != nil {
			return nil, nil, err
		}
		lg, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.GrantRecord, error) {
			g := policy.GrantRecord{Legacy: true}
			err := r.Scan(&g.Module, &g.Action, &g.ScopeType, &g.ScopeID)
			return g, err
		})
		if err != nil {
			return nil, nil, err
		}
		grants = append(grants, lg...)
	}
	if !found {
		return nil, nil, nil
	}
	return &u, grants, nil
}

// evictUserIDs drops the cached users with these ids.
func (s *Postgres) evictUserIDs(ids []string) {
	s.userMu.Lock()
	defer s.userMu.Unlock()
	s.userGen.Add(1)
	for _, id := range ids {
		if sub, ok := s.idToSub[id]; ok {
			s.users.Delete(sub)
			delete(s.idToSub, id)
		}
	}
}

// evictSubs drops the cache entries (positive or negative) of these subjects.
func (s *Postgres) evictSubs(subs []string) {
	s.userMu.Lock()
	defer s.userMu.Unlock()
	s.userGen.Add(1)
	for _, sub := range subs {
		s.users.Delete(sub)
	}
}

// expireUsers makes every cached user not fresh, without dropping it
// (after a reconnect or Reload, when evictions may have been missed): the
// next lookup of each reloads it, and falls back to it only while the
// database cannot answer.
func (s *Postgres) expireUsers() {
	s.userEpoch.Add(1)
}

// flushUsers empties the user cache: every user may have changed (a
// notification without ids, or evictions that could not be resolved).
func (s *Postgres) flushUsers() {
	s.userMu.Lock()
	defer s.userMu.Unlock()
	s.userGen.Add(1)
	s.users.Flush()
	clear(s.idToSub)
}

// subsByID returns the current authentik_sub of these user ids.
func (s *Postgres) subsByID(ctx context.Context, ids []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, sqlUserSubsByID, ids)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id, sub string
		err := r.Scan(&id, &sub)
		return sub, err
	})
}

// readDirectory reads modules, companies and sites in one round trip.
func (s *Postgres) readDirectory(ctx context.Context) (*policy.Directory, error) {
	b := &pgx.Batch{}
	var (
		mods  []policy.ModuleRecord
		comps []policy.CompanyRecord
		sites []policy.SiteRecord
	)
	b.Queue(sqlModules).Query(func(rows pgx.Rows) error {
		var err error
		mods, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.ModuleRecord, error) {
			var m policy.ModuleRecord
			err := r.Scan(&m.ID, &m.Key, &m.Status)
			return m, err
		})
		return err
	})
	b.Queue(sqlCompanies).Query(func(rows pgx.Rows) error {
		var err error
		comps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.CompanyRecord, error) {
			var c policy.CompanyRecord
			err := r.Scan(&c.ID, &c.Key, &c.Status)
			return c, err
		})
		return err
	})
	b.Queue(sqlSites).Query(func(rows pgx.Rows) error {
		var err error
		sites, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy.SiteRecord, error) {
			var st policy.SiteRecord
			err := r.Scan(&st.ID, &st.Key, &st.CompanyID, &st.Status)
			return st, err
		})
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("loading the directory: %w", err)
	}
	return policy.NewDirectory(mods, comps, sites), nil
}

// connectionLost reports whether err ended a query because its connection
// broke or its server process was told to stop, rather than a statement
// error that would repeat, or ctx ending. A failed dial counts too: the
// retry is bounded by the load's context (UserLoadTimeout) either way.
func connectionLost(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// 57P: admin_shutdown, crash_shutdown, cannot_connect_now; 08:
		// connection exceptions, as PgBouncer reports its disconnects.
		return strings.HasPrefix(pe.Code, "57P") || strings.HasPrefix(pe.Code, "08")
	}
	var ne *net.OpError
	return pgconn.SafeToRetry(err) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
