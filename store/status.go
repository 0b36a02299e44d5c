package store

import (
	"cmp"
	"slices"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// The states a store reports to the operator page (SPEC §13 store.state),
// from what it already reports for /readyz.
const (
	// StateOK: the store answers (PostgreSQL reachable, or the file loaded).
	StateOK = "ok"
	// StateStale: PostgreSQL is unreachable and what was known still serves,
	// within SCOPEGATE_STALE_TTL.
	StateStale = "stale"
	// StateDown: the store cannot answer (never loaded, or unreachable past
	// the stale TTL): requests that need it fail closed.
	StateDown = "down"
)

// State returns the store's state at now and when the last full load
// succeeded (zero before the first).
func (s *Postgres) State(now time.Time) (state string, lastReload time.Time) {
	if n := s.lastLoad.Load(); n != 0 {
		lastReload = time.Unix(0, n)
	}
	switch {
	case !s.loaded.Load() || s.stale(now):
		return StateDown, lastReload
	case s.down.Load():
		return StateStale, lastReload
	}
	return StateOK, lastReload
}

// ListClients returns every client of the snapshot, by client_key; nil
// before the first load. It is for display: the values are shared and must
// not be changed.
func (s *Postgres) ListClients() []*policy.Client {
	snap := s.clients.Load()
	if snap == nil {
		return nil
	}
	out := make([]*policy.Client, 0, snap.len())
	for c := range snap.clients() {
		out = append(out, c)
	}
	return sortClients(out)
}

// State returns StateOK (a File exists only once its file has loaded) and
// when the data in use was loaded.
func (f *File) State(now time.Time) (state string, lastReload time.Time) {
	if snap := f.snap.Load(); snap != nil {
		return StateOK, snap.loaded
	}
	return StateDown, time.Time{}
}

// ListClients returns every client of the file, by client_key. It is for
// display: the values are shared and must not be changed.
func (f *File) ListClients() []*policy.Client {
	snap := f.snap.Load()
	if snap == nil {
		return nil
	}
	out := make([]*policy.Client, 0, len(snap.clients))
	for _, c := range snap.clients {
		out = append(out, c)
	}
	return sortClients(out)
}

func sortClients(cs []*policy.Client) []*policy.Client {
	slices.SortFunc(cs, func(a, b *policy.Client) int { return cmp.Compare(a.ClientKey, b.ClientKey) })
	return cs
}

// State reports the shared buckets' state for the operator page (SPEC §13
// rate_limit.state): "fallback" while Redis is failing and its breaker is
// open (requests take the SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR path), else
// "ok".
func (r *RedisBuckets) State() string {
	if r.br.isOpen() {
		return "fallback"
	}
	return "ok"
}
