// Package console is the operator page of the admin listener (SPEC §13):
// in-memory counters fed by every decision, the JSON API under /api/v1/,
// the live denial stream and the self-contained page at /.
//
// The request path calls [Console.Observe] once per decision. It takes no
// lock (atomic counters; a mutex only when a minute slot rolls over or a
// client or routes file is first seen) and does not allocate. Memory is
// bounded: 60 minute slots, per-route counters for the routes file in use,
// per-client counters only for clients the store knows, and a ring of the
// last 200 denials.
package console

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// StoreView is what the console reads from the credential store;
// store.Postgres and store.File satisfy it.
type StoreView interface {
	// State returns "ok", "stale" or "down" and when the last full load
	// succeeded.
	State(now time.Time) (state string, lastReload time.Time)
	// ListClients returns every known client, by client_key.
	ListClients() []*policy.Client
}

// RoutesSource gives the routes in use; *policy.Engine satisfies it.
type RoutesSource interface {
	Routes() *policy.Routes
}

// Setting is one configuration value shown on the page. Never a secret.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Config configures a [Console].
type Config struct {
	Version   string
	StoreKind string // "postgres" or "file"
	Store     StoreView
	Routes    RoutesSource
	// DefaultRateLimitPerMin applies to clients whose rate_limit_per_min is
	// NULL (SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN); 0 is unlimited.
	DefaultRateLimitPerMin int
	// RateLimitBackend is "local" or "redis"; "" means "local".
	RateLimitBackend string
	// RateLimitState, if set, reports "ok" or "fallback" (the Redis
	// backend's breaker); nil always reports "ok".
	RateLimitState func() string
	// Settings are shown as the page's configuration (non-secret values
	// only).
	Settings []Setting
	// MaxSubscribers bounds the open denial streams. Default 16.
	MaxSubscribers int
	// Now, if set, replaces time.Now (tests).
	Now func() time.Time
}

// Console keeps the counters and serves the page and its API. It is safe
// for concurrent use.
type Console struct {
	cfg     Config
	started time.Time

	minutes [window]minute

	clients   atomic.Pointer[clientTable]
	clientsMu sync.Mutex // serializes table rebuilds

	routes   atomic.Pointer[routeTable]
	routesMu sync.Mutex

	ring denialRing
	subs subscribers

	allowed, denied atomic.Uint64 // since start
	done            chan struct{}
	closeOnce       sync.Once
}

// New builds a Console. cfg.Store and cfg.Routes are required.
func New(cfg Config) *Console {
	if cfg.RateLimitBackend == "" {
		cfg.RateLimitBackend = "local"
	}
	if cfg.MaxSubscribers <= 0 {
		cfg.MaxSubscribers = 16
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, started: cfg.Now(), done: make(chan struct{})}
	c.clients.Store(&clientTable{byKey: map[string]*clientStats{}})
	c.routes.Store(&routeTable{})
	c.ring.init()
	c.syncClients()
	return c
}

// Close ends every open denial stream (before the admin server shuts down,
// which waits for them). It is safe to call more than once.
func (c *Console) Close() { c.closeOnce.Do(func() { close(c.done) }) }

// Event is one decision as the console sees it. Its strings and RequestID
// may alias request buffers: Observe copies what it keeps.
type Event struct {
	Time   time.Time     // when the request began
	Took   time.Duration // how long the decision took
	Status int           // the status answered
	Reason policy.Reason // ReasonNone when allowed
	Route  int           // index in the routes file, -1 when none
	Method string
	Path   string // raw path, no query
	// ClientKey is the client_key the request presented ("" for none).
	ClientKey string
	// ClientFound: the store found the client ClientKey names (the key
	// is not made up).
	ClientFound bool
	UserSub     string
	RequestID   []byte
	// RateLimit is the client's bucket state when the request reached it.
	RateLimit policy.RateLimitState
}

// Observe records one decision. It takes no lock on the common path and
// does not allocate.
func (c *Console) Observe(e *Event) {
	denied := e.Reason != policy.ReasonNone
	if denied {
		c.denied.Add(1)
	} else {
		c.allowed.Add(1)
	}
	c.minuteAt(e.Time).add(e.Reason, e.Took)
	c.observeRoute(e.Route, e.Reason)
	if e.ClientKey != "" {
		c.observeClient(e)
	}
	if denied {
		seq := c.ring.add(e)
		c.subs.notify(seq)
	}
}

// reasonIndex maps r to a counter index; reasons beyond the table count as
// internal errors.
func reasonIndex(r policy.Reason) int {
	if int(r) >= maxReasons {
		return int(policy.ReasonInternal)
	}
	return int(r)
}

// maxReasons bounds the reason codes counted one by one (policy has about
// thirty; new ones fit without a change here).
const maxReasons = 64

// reasonCounts counts decisions by reason.
type reasonCounts [maxReasons]atomic.Uint64

// snapshot returns the non-zero counts by reason code.
func (rc *reasonCounts) snapshot() map[string]uint64 {
	out := map[string]uint64{}
	if rc == nil {
		return out
	}
	for i := 1; i < maxReasons; i++ {
		if n := rc[i].Load(); n > 0 {
			out[policy.Reason(i).String()] += n
		}
	}
	return out
}

func (c *Console) now() time.Time { return c.cfg.Now() }
