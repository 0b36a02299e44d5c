package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// MarkUsed records a use of the client for the batched last_used_at writer:
// one atomic max on the client's slot. It never blocks on the database and
// does not allocate. Uses of ids not in the snapshot are ignored.
func (s *Postgres) MarkUsed(clientID string, at time.Time) {
	snap := s.clients.Load()
	if snap == nil {
		return
	}
	e, ok := snap.entry(clientID)
	if !ok {
		return
	}
	e.slot.markMax(at.UnixNano())
}

// markMax raises the pending use to t (unix nanoseconds) unless it is newer.
func (u *usageSlot) markMax(t int64) {
	for {
		cur := u.pending.Load()
		if cur >= t || u.pending.CompareAndSwap(cur, t) {
			return
		}
	}
}

// flushLoop writes last_used_at every FlushInterval until Close.
func (s *Postgres) flushLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.FlushInterval+s.cfg.ConnectTimeout)
			if err := s.flush(ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("last_used_at flush failed; retrying next tick", slog.String("err", err.Error()))
			}
			cancel()
		}
	}
}

// flush sends one UPDATE with the newest pending use of every marked client.
// On success each slot is cleared unless a newer use arrived meanwhile; on
// failure the marks stay for the next tick.
func (s *Postgres) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	snap := s.clients.Load()
	if snap == nil {
		return nil
	}
	var (
		ids   []string
		times []time.Time
		slots []*usageSlot
		vals  []int64
	)
	for id, e := range snap.entries() {
		v := e.slot.pending.Load()
		if v == 0 {
			continue
		}
		ids = append(ids, id)
		times = append(times, time.Unix(0, v).UTC())
		slots = append(slots, e.slot)
		vals = append(vals, v)
	}
	if len(ids) == 0 {
		return nil
	}
	s.flushes.Add(1)
	if _, err := s.pool.Exec(ctx, sqlFlushLastUsed, ids, times); err != nil {
		s.m.flushFailures.Inc()
		s.m.storeErrors.Inc()
		return fmt.Errorf("store: flushing last_used_at for %d clients: %w", len(ids), err)
	}
	for i, sl := range slots {
		sl.pending.CompareAndSwap(vals[i], 0)
	}
	s.m.flushOK.Inc()
	s.m.flushRows.Add(len(ids))
	return nil
}

// Flush writes the pending last_used_at marks now (tests, shutdown).
func (s *Postgres) Flush(ctx context.Context) error { return s.flush(ctx) }

// FlushStatements returns how many UPDATE statements the writer has sent.
func (s *Postgres) FlushStatements() int64 { return s.flushes.Load() }
