package store

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scopegate/scopegate/policy"
)

// Time a load may take beyond connecting: a full reload of every client
// and the directory, and the re-read of the rows a batch of changes names.
const (
	fullLoadBudget   = time.Minute
	changeLoadBudget = 30 * time.Second
)

// feedEvent is one notification (or, with full set, a request for a full
// reload after the listener (re)connected).
type feedEvent struct {
	full    bool
	done    chan<- error // with full: receives the load's result (Reload)
	payload string
	recv    time.Time
}

// change is the payload of a scopegate_changes notification (migration 0002).
type change struct {
	Table  string `json:"table"`
	Op     string `json:"op"`
	ID     string `json:"id"`
	UserID string `json:"user_id"`
}

// listen owns the dedicated change-feed connection (not from the pool):
// connect, LISTEN, ask for a full reload, then forward notifications to the
// applier, pinging the connection when idle. After any error it marks the
// database down, reconnects with backoff (100 ms doubling to 500 ms, cut
// short when the pool opens a connection), and the full reload follows.
func (s *Postgres) listen() {
	defer s.wg.Done()
	for attempt := 0; ; attempt++ {
		conn, err := s.connectListener()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.m.storeErrors.Inc()
			s.markDown(err)
			select {
			case s.connectFailed <- err:
			default:
			}
			s.log.Debug("change feed connect failed", slog.String("err", err.Error()), slog.Int("attempt", attempt))
			// A pooled connection opening meanwhile (a full-reload retry,
			// a last_used flush) means the database is back: try now.
			drain(s.dialed)
			if !s.sleepOr(backoff(attempt), s.dialed) {
				return
			}
			continue
		}
		attempt = -1
		select {
		case s.events <- feedEvent{full: true, recv: time.Now()}:
		case <-s.ctx.Done():
			closeConn(conn)
			return
		}
		err = s.receive(conn)
		closeConn(conn)
		if s.ctx.Err() != nil {
			return
		}
		s.m.storeErrors.Inc()
		s.m.reconnects.Inc()
		s.markDown(err)
		s.log.Warn("change feed connection lost; reconnecting", slog.String("err", err.Error()))
		if !s.sleep(backoff(0)) {
			return
		}
	}
}

// drain empties a wake-up channel of capacity 1, so only a wake-up that
// comes after it counts.
func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (s *Postgres) connectListener() (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig // a copy
	cfg.ConnectTimeout = s.cfg.ConnectTimeout
	cfg.RuntimeParams["application_name"] = listenerAppName
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+listenChannel); err != nil {
		closeConn(conn)
		return nil, err
	}
	var triggers bool
	if err := conn.QueryRow(ctx, sqlNotifyTriggers).Scan(&triggers); err == nil && !triggers {
		// Without migration 0002 nothing is notified: changes would only
		// arrive with the periodic reload.
		s.log.Error("scopegate change triggers are missing (run `scopegate migrate`); changes reach this gateway only by the periodic reload",
			slog.Duration("reload_interval", s.cfg.ReloadInterval))
	}
	return conn, nil
}

// receive forwards notifications until the connection fails or the store
// closes, and pings the server every HealthInterval.
func (s *Postgres) receive(conn *pgx.Conn) error {
	for {
		if err := s.receiveWindow(conn); err != nil {
			return err
		}
		// Make sure the server is still there (it may be silent because it
		// is gone).
		pctx, pcancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout)
		_, err := conn.Exec(pctx, "SELECT 1")
		pcancel()
		if err != nil {
			return err
		}
		s.touch()
	}
}

// receiveWindow forwards notifications for one HealthInterval and returns
// nil when it ends. One context serves the whole window: a context per
// notification made a bulk change of 100,000 rows, whose notifications
// arrive back to back, take 1.2 s instead of 0.85 s to drain, holding up a
// revocation committed after it.
func (s *Postgres) receiveWindow(conn *pgx.Conn) error {
	wctx, cancel := context.WithTimeout(s.ctx, s.cfg.HealthInterval)
	defer cancel()
	for {
		n, err := conn.WaitForNotification(wctx)
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		if err != nil {
			if pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
		s.touch()
		s.m.notifications.Inc()
		select {
		case s.events <- feedEvent{payload: n.Payload, recv: time.Now()}:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}

// fullLoad is the result of a background full load.
type fullLoad struct {
	clients *snapEdit // the successor of the snapshot the load started from
	dir     *policy.Directory
	err     error
}

// apply is the only writer of the snapshot and the directory after start-up.
// It batches the notifications that are waiting and applies them (one query
// per kind). Full loads (start, reconnect, the periodic safety net, Reload)
// run in the background so that a revocation is never held up behind a long
// reload; changes applied meanwhile are re-read when the load is swapped in.
// A failure marks the database down and schedules a full load with backoff.
// The result of the first full load goes to first.
func (s *Postgres) apply(first chan<- error) {
	defer s.wg.Done()
	ticker := time.NewTicker(s.cfg.ReloadInterval)
	defer ticker.Stop()
	var (
		retryC   <-chan time.Time
		failures int
		needFull bool
		loading  bool
		dirty    map[string]struct{} // client ids changed while loading
		dirDirty bool                // directory changed while loading
		// Users are flushed after a full load asked for by a (re)connect or
		// Reload, when notifications may have been missed; not after the
		// periodic one (CacheTTL bounds what it could fix).
		flushNext, flushThis bool
		pending              = []chan<- error{first}
		active               []chan<- error
		results              = make(chan fullLoad, 1)
	)
	fail := func(err error) {
		s.m.storeErrors.Inc()
		s.log.Warn("applying database changes failed; full reload scheduled", slog.String("err", err.Error()))
		s.markDown(err)
		if retryC == nil {
			retryC = time.After(backoff(failures))
		}
		failures++
	}
	batch := make([]feedEvent, 0, 256)
	for {
		batch = batch[:0]
		select {
		case <-s.ctx.Done():
			return
		case ev := <-s.events:
			batch = append(batch, ev)
		drain:
			for len(batch) < cap(batch) {
				select {
				case ev := <-s.events:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
		case <-ticker.C:
			needFull = true
		case <-retryC:
			retryC = nil
			needFull = true
		case res := <-results:
			loading = false
			err := res.err
			if err == nil {
				err = s.swapFull(res, dirty, dirDirty, flushThis)
			}
			dirty, dirDirty = nil, false
			if err != nil {
				flushNext = flushNext || flushThis // the retry still owes it
				fail(err)
			} else {
				failures = 0
				s.m.reloads.Inc()
				s.markUp()
				s.notify()
			}
			for _, w := range active {
				w <- err
			}
			active = nil
		}
		if len(batch) > 0 {
			r := s.applyChanges(batch)
			if r.full {
				needFull, flushNext = true, true
				pending = append(pending, r.waiters...)
			}
			if loading {
				for _, id := range r.clientIDs {
					dirty[id] = struct{}{}
				}
				dirDirty = dirDirty || r.dirChanged
			}
			if r.err != nil {
				fail(r.err)
			}
			s.notify()
		}
		if needFull && !loading {
			needFull, loading = false, true
			flushThis, flushNext = flushNext, false
			dirty, dirDirty = map[string]struct{}{}, false
			active, pending = pending, nil
			// The load edits a copy of the counts of origin lists: the
			// snapshot's own belong to this goroutine, which goes on
			// applying changes meanwhile.
			base := s.clients.Load()
			var lists *policy.OriginLists
			if base != nil {
				lists = base.lists.Clone()
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				results <- s.loadFull(base, lists)
			}()
		}
	}
}

// loadFull reads every client and the directory without touching what is
// served.
func (s *Postgres) loadFull(base *clientSnap, lists *policy.OriginLists) fullLoad {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout+fullLoadBudget)
	defer cancel()
	snap, err := s.buildClientSnap(ctx, base, lists)
	if err != nil {
		return fullLoad{err: err}
	}
	dir, err := s.readDirectory(ctx)
	if err != nil {
		return fullLoad{err: err}
	}
	return fullLoad{clients: snap, dir: dir}
}

// swapFull serves a finished full load: the new snapshot (keeping the usage
// slots of the one it replaces; in time of the changes applied during the
// load, not of the clients, so a revocation never waits on a walk of a
// million entries), then the clients changed while it loaded
// re-read, the directory unless it changed meanwhile (the newer one stays),
// and, when asked, every cached user expired (kept to fall back on).
func (s *Postgres) swapFull(res fullLoad, dirty map[string]struct{}, dirDirty, expireUsers bool) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	cur := s.clients.Load()
	if cur != nil {
		// A client changed while the load ran (dirty) may have been read
		// before its change: a revocation the feed already applied to cur
		// would be served undone until the re-read below, or for good if
		// it fails. So the new snapshot takes cur's entry for each (its
		// client and its slot, the load's pending usage merged in), or
		// none when cur has none; the re-read then brings the rows.
		// Removed first, then put: two dirty clients may swap a client_key.
		var keep []clientEntry
		for id := range dirty {
			ce, cok := cur.entry(id)
			if e, ok := res.clients.next.entry(id); ok && cok && ce.slot != e.slot {
				ce.slot.markMax(e.slot.pending.Load())
			}
			res.clients.remove(id)
			if cok {
				keep = append(keep, ce)
			}
		}
		for _, ce := range keep {
			res.clients.put(ce)
		}
	}
	s.clients.Store(res.clients.next.seal())
	if len(dirty) > 0 {
		ids := make([]string, 0, len(dirty))
		for id := range dirty {
			ids = append(ids, id)
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout+changeLoadBudget)
		defer cancel()
		if err := s.reloadClients(ctx, ids, cur); err != nil {
			return err
		}
	}
	if !dirDirty || s.dir.Load() == nil {
		s.dir.Store(res.dir)
	}
	if expireUsers {
		// Notifications may have been missed: reload each user on its next
		// lookup, but keep the entries to fall back on while the database
		// still fails (a flapping connection must not deny cached users).
		s.expireUsers()
	}
	return nil
}

// changeResult is what applyChanges did.
type changeResult struct {
	full       bool           // a full load was asked for (reconnect, TRUNCATE, Reload)
	waiters    []chan<- error // Reload calls waiting for that load
	clientIDs  []string       // clients named by notifications
	dirChanged bool
	err        error
}

// applyChanges applies a batch of notifications: named clients re-read,
// users evicted, the directory reloaded. Full-load requests are passed back.
func (s *Postgres) applyChanges(batch []feedEvent) (r changeResult) {
	var userIDs, userRowIDs []string
	allUsers := false
	for _, ev := range batch {
		if ev.full {
			r.full = true
			if ev.done != nil {
				r.waiters = append(r.waiters, ev.done)
			}
			continue
		}
		var c change
		if err := json.Unmarshal([]byte(ev.payload), &c); err != nil {
			s.log.Warn("ignoring malformed change notification", slog.String("err", err.Error()))
			continue
		}
		switch c.Table {
		case "api_clients":
			if c.ID == "" {
				r.full = true // TRUNCATE
			} else {
				r.clientIDs = append(r.clientIDs, c.ID)
			}
		case "users":
			if c.ID == "" {
				allUsers = true
			} else {
				userRowIDs = append(userRowIDs, c.ID)
			}
		case "user_scope_permissions", "permissions":
			if c.UserID == "" {
				allUsers = true
			} else {
				userIDs = append(userIDs, c.UserID)
			}
		case "modules", "companies", "sites":
			r.dirChanged = true
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout+changeLoadBudget)
	defer cancel()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// Before the first full load there is nothing to update: the load (and
	// its re-read of the named clients) covers these changes.
	if len(r.clientIDs) > 0 && s.clients.Load() != nil {
		if r.err = s.reloadClients(ctx, r.clientIDs, nil); r.err != nil {
			return r
		}
	}
	if r.dirChanged {
		dir, err := s.readDirectory(ctx)
		if err != nil {
			r.err = err
			return r
		}
		// Cached users are recompiled against it on their next lookup.
		s.dir.Store(dir)
	}
	if allUsers {
		s.flushUsers()
	} else {
		if len(userIDs) > 0 || len(userRowIDs) > 0 {
			s.evictUserIDs(append(userIDs, userRowIDs...))
		}
		if len(userRowIDs) > 0 {
			// The row's subject may be new or renamed (a negative entry, or
			// an id not yet cached): evict by its current subject too.
			subs, err := s.subsByID(ctx, userRowIDs)
			if err != nil {
				s.flushUsers() // be safe, then report
				r.err = err
				return r
			}
			s.evictSubs(subs)
		}
	}
	now := time.Now()
	for _, ev := range batch {
		if !ev.full {
			s.m.feedLag.Update(now.Sub(ev.recv).Seconds())
		}
	}
	return r
}
