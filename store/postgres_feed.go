package store

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// feedEvent is one notification (or, with full set, a request for a full
// reload after the listener (re)connected).
type feedEvent struct {
	full    bool
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
// database down, reconnects with backoff, and the full reload follows.
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
			s.log.Debug("change feed connect failed", slog.String("err", err.Error()), slog.Int("attempt", attempt))
			if !s.sleep(backoff(attempt)) {
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

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (s *Postgres) connectListener() (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.pool.Config().ConnConfig.ConnString())
	if err != nil {
		return nil, errors.New("parsing the database URL")
	}
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
	return conn, nil
}

// receive forwards notifications until the connection fails or the store
// closes.
func (s *Postgres) receive(conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(s.ctx, s.cfg.HealthInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		if err == nil {
			s.touch()
			s.m.notifications.Inc()
			select {
			case s.events <- feedEvent{payload: n.Payload, recv: time.Now()}:
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
			continue
		}
		if !pgconn.Timeout(err) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// Idle: make sure the server is still there.
		pctx, pcancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout)
		_, err = conn.Exec(pctx, "SELECT 1")
		pcancel()
		if err != nil {
			return err
		}
		s.touch()
	}
}

// apply is the only writer of the snapshot after start-up: it batches the
// notifications that are waiting, applies them (one query per kind), runs
// the periodic full reload and retries a failed reload with backoff. The
// result of the first full load goes to first.
func (s *Postgres) apply(first chan<- error) {
	defer s.wg.Done()
	ticker := time.NewTicker(s.cfg.ReloadInterval)
	defer ticker.Stop()
	var (
		retry    *time.Timer
		retryC   <-chan time.Time
		failures int
		needFull bool
	)
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
		}
		err := s.applyBatch(batch, needFull)
		if first != nil && (err == nil || needFull || hasFull(batch)) {
			first <- err
			first = nil
		}
		if err != nil {
			s.m.storeErrors.Inc()
			s.log.Warn("applying database changes failed; full reload scheduled", slog.String("err", err.Error()))
			if !errors.Is(err, context.Canceled) {
				s.markDown(err)
			}
			needFull = true
			if retryC == nil {
				retry = time.NewTimer(backoff(failures))
				retryC = retry.C
			}
			failures++
			continue
		}
		needFull = false
		failures = 0
	}
}

func hasFull(batch []feedEvent) bool {
	for _, ev := range batch {
		if ev.full {
			return true
		}
	}
	return false
}

// applyBatch applies a batch of events; full forces a full reload.
func (s *Postgres) applyBatch(batch []feedEvent, full bool) error {
	var (
		clientIDs, userIDs, userRowIDs []string
		fullClients, fullDir, allUsers bool
	)
	fullClients, fullDir = full, full
	for _, ev := range batch {
		if ev.full {
			fullClients, fullDir = true, true
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
				fullClients = true
			} else {
				clientIDs = append(clientIDs, c.ID)
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
			fullDir = true
		}
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ConnectTimeout+30*time.Second)
	defer cancel()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	switch {
	case fullClients:
		if err := s.loadAllClients(ctx); err != nil {
			return err
		}
	case len(clientIDs) > 0:
		if err := s.reloadClients(ctx, clientIDs); err != nil {
			return err
		}
	}
	if fullDir {
		if err := s.loadDirectory(ctx); err != nil {
			return err
		}
		allUsers = true
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
				return err
			}
			s.evictSubs(subs)
		}
	}
	if fullClients && fullDir {
		s.m.reloads.Inc()
		s.markUp()
	}
	now := time.Now()
	for _, ev := range batch {
		if !ev.full {
			s.m.feedLag.Update(now.Sub(ev.recv).Seconds())
		}
	}
	return nil
}
