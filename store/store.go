// Package store adapts PostgreSQL and the declarative file store to what the
// policy engine needs: compiled clients, users and the directory of modules,
// companies and sites. It owns the caches, the change feed, the
// last_used_at writer and, when asked, user sync from token claims
// ([Postgres.SyncUser]).
package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// ErrUnavailable is returned when the backing store cannot answer and what was
// known is older than the stale TTL (SPEC §6): the caller fails closed with
// 503 store_unavailable.
var ErrUnavailable = errors.New("store: unavailable")

// Store is what `scopegate serve` needs from a credential store. Both the
// PostgreSQL store and the file store implement it. All methods are safe for
// concurrent use.
type Store interface {
	// LookupClient returns the compiled client with this client_key, nil when
	// none exists. It never touches the database (snapshot) and does not
	// allocate. Past the stale TTL while the database is unreachable it
	// returns ErrUnavailable.
	LookupClient(clientKey string, now time.Time) (*policy.Client, error)
	// LookupUser returns the user with this authentik_sub (nil when unknown,
	// negatively cached), from the cache when warm, else from the database.
	LookupUser(ctx context.Context, sub string, now time.Time) (*policy.User, error)
	// ClientOrigins returns the allowed_origins of the active clients
	// (SPEC §11 allow_origins: clients), current with the client snapshot.
	// It never touches the database and does not allocate.
	ClientOrigins() *policy.ClientOrigins
	// Directory returns the current modules, companies and sites.
	Directory(now time.Time) (*policy.Directory, error)
	// MarkUsed records a use of the client for the batched last_used_at
	// writer. It never blocks on the database.
	MarkUsed(clientID string, at time.Time)
	// Ready reports whether the store is reachable or serving from a warm
	// cache within the stale TTL.
	Ready(now time.Time) bool
	// Close flushes last_used_at and releases connections.
	Close(ctx context.Context) error
}

// changeHooks runs the functions registered with OnChange after each change
// a store applies (a change-feed batch, a full reload, a reloaded file).
type changeHooks struct {
	mu  sync.Mutex
	fns []func()
}

// OnChange registers fn to run after every change the store applies, on
// the store's own goroutine: fn must return quickly (signal a goroutine of
// its own). The proxy uses it to re-check open upgrade tunnels (SPEC §10).
func (h *changeHooks) OnChange(fn func()) {
	h.mu.Lock()
	h.fns = append(h.fns, fn)
	h.mu.Unlock()
}

func (h *changeHooks) notify() {
	h.mu.Lock()
	fns := h.fns
	h.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
