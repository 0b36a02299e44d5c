package console

import (
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// clientStats are the counters of one known client.
type clientStats struct {
	requests atomic.Uint64
	denials  atomic.Pointer[reasonCounts] // allocated on the client's first denial
	lastUse  atomic.Int64                 // unix nanoseconds of the last allowed request
	// The bucket as the last request that reached it left it: whole tokens
	// left, and when (0: never reached).
	rlRemaining atomic.Int64
	rlAt        atomic.Int64
}

// clientTable maps client_key to counters. It is immutable once published:
// a new client copies it (once per client, under clientsMu).
type clientTable struct {
	byKey map[string]*clientStats
}

// observeClient counts e for the client whose key it presented, when the
// store knows that client. A key the table lacks is added only when the
// store found it (Event.ClientFound): a made-up key must not grow it.
func (c *Console) observeClient(e *Event) {
	cs := c.clients.Load().byKey[e.ClientKey]
	if cs == nil {
		if !e.ClientFound {
			return
		}
		cs = c.addClient(e.ClientKey)
	}
	cs.requests.Add(1)
	if e.Reason == policy.ReasonNone {
		cs.lastUse.Store(e.Time.UnixNano())
	} else {
		rc := cs.denials.Load()
		if rc == nil {
			rc = new(reasonCounts)
			if !cs.denials.CompareAndSwap(nil, rc) {
				rc = cs.denials.Load()
			}
		}
		rc[reasonIndex(e.Reason)].Add(1)
	}
	if e.RateLimit.Applied {
		cs.rlRemaining.Store(int64(e.RateLimit.Remaining))
		cs.rlAt.Store(e.Time.UnixNano())
	}
}

// addClient adds counters for key (a client the store knows but the table
// does not yet list).
func (c *Console) addClient(key string) *clientStats {
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	t := c.clients.Load()
	if cs := t.byKey[key]; cs != nil {
		return cs
	}
	n := make(map[string]*clientStats, len(t.byKey)+1)
	for k, v := range t.byKey {
		n[k] = v
	}
	cs := new(clientStats)
	n[strings.Clone(key)] = cs
	c.clients.Store(&clientTable{byKey: n})
	return cs
}

// syncClients reads the store's clients and makes the table list exactly
// them, keeping the counters of those that stay. It returns the clients.
func (c *Console) syncClients() []*policy.Client {
	if c.cfg.Store == nil {
		return nil
	}
	list := c.cfg.Store.ListClients()
	c.clientsMu.Lock()
	defer c.clientsMu.Unlock()
	t := c.clients.Load()
	same := len(t.byKey) == len(list)
	for i := 0; same && i < len(list); i++ {
		_, same = t.byKey[list[i].ClientKey]
	}
	if same {
		return list
	}
	n := make(map[string]*clientStats, len(list))
	for _, cl := range list {
		cs := t.byKey[cl.ClientKey]
		if cs == nil {
			cs = new(clientStats)
		}
		n[cl.ClientKey] = cs
	}
	c.clients.Store(&clientTable{byKey: n})
	return list
}

// clientView is one entry of /api/v1/clients. It never holds the hash.
type clientView struct {
	ID         string  `json:"id"`
	ClientKey  string  `json:"client_key"`
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	ExpiresAt  *string `json:"expires_at"`
	LastUsedAt *string `json:"last_used_at"`
	// RateLimitPerMin is the limit that applies (the client's own, or the
	// default when its column is NULL); null when unlimited.
	RateLimitPerMin *int `json:"rate_limit_per_min"`
	// RateLimitDefault reports that the limit is the default's.
	RateLimitDefault bool              `json:"rate_limit_default"`
	Requests         uint64            `json:"requests"`
	Denials          map[string]uint64 `json:"denials"`
	// Remaining is the whole tokens left in this replica's bucket; null
	// when unlimited.
	Remaining *int `json:"remaining"`
}

// clientViews builds /api/v1/clients at now.
func (c *Console) clientViews(now time.Time) []clientView {
	list := c.syncClients()
	t := c.clients.Load()
	out := make([]clientView, 0, len(list))
	for _, cl := range list {
		cs := t.byKey[cl.ClientKey]
		if cs == nil {
			cs = new(clientStats)
		}
		v := clientView{
			ID: cl.ID, ClientKey: cl.ClientKey, Name: cl.Name, Status: cl.Status(),
			Requests: cs.requests.Load(), Denials: cs.denials.Load().snapshot(),
		}
		if !cl.ExpiresAt.IsZero() {
			v.ExpiresAt = timeString(cl.ExpiresAt)
		}
		last := cl.LastUsed()
		if n := cs.lastUse.Load(); n != 0 && time.Unix(0, n).After(last) {
			last = time.Unix(0, n)
		}
		if !last.IsZero() {
			v.LastUsedAt = timeString(last)
		}
		limit := cl.RateLimitPerMin
		if limit < 0 {
			limit, v.RateLimitDefault = c.cfg.DefaultRateLimitPerMin, true
		}
		if limit > 0 {
			v.RateLimitPerMin = &limit
			rem := remaining(cs, limit, now)
			v.Remaining = &rem
		}
		out = append(out, v)
	}
	return out
}

// remaining estimates the whole tokens left at now in a bucket of limit
// per minute, from what the last request that reached it saw plus the
// refill since (a bucket never reached is full).
func remaining(cs *clientStats, limit int, now time.Time) int {
	at := cs.rlAt.Load()
	if at == 0 {
		return limit
	}
	elapsed := max(0, now.Sub(time.Unix(0, at)).Seconds())
	r := float64(cs.rlRemaining.Load()) + math.Floor(elapsed*float64(limit)/60)
	return int(min(r, float64(limit)))
}

// timeString formats t as RFC 3339 UTC.
func timeString(t time.Time) *string {
	s := t.UTC().Format(time.RFC3339)
	return &s
}
