package policy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Slow-hash gate defaults (see [EngineConfig]).
const (
	defaultSlowHashWait  = time.Second
	defaultSlowHashQueue = 16
)

// slowHashGate bounds the bcrypt and Argon2id verifications running at once
// across the engine, so wrong guesses against a slow-hashed client (whose
// client_key is an identifier, not a secret) cannot take every core, nor,
// for Argon2id, m KiB of memory per request in flight; and it shares the
// slots fairly, so that they cannot delay every other client either:
//
//   - one client holds at most share slots at once;
//   - a freed slot goes to the next client in turn (round robin over the
//     clients with requests waiting, first come first served within one),
//     so a newcomer waits for at most one verification per slot, however
//     many requests a flooded client has queued;
//   - a client has at most queueMax requests waiting, and a request waits
//     at most wait: past either bound it is refused at once (the caller
//     answers 429 rate_limited), so a flood costs its target client_key
//     refusals, not every client a queue.
//
// Remembered outcomes and SHA-256 hashes never reach the gate. The wait
// bound is the one timer in policy: it runs only when every slot is taken.
type slowHashGate struct {
	slots, share, queueMax int
	wait                   time.Duration

	mu      sync.Mutex
	busy    int                    // slots in use
	grants  uint64                 // slots handed out, ever: a waiter's ahead is measured in them
	clients map[string]*gateClient // by client id, while it holds or waits for a slot
	turns   []*gateClient          // clients with requests waiting, next first

	waiting atomic.Int64 // requests waiting for a slot
	refused atomic.Int64 // requests refused (queue full or wait over)
	checks  atomic.Int64 // slow verifications run
	active  atomic.Int64 // running now
	peak    atomic.Int64 // most ever running at once
}

// gateClient is one client's share of the gate.
type gateClient struct {
	id      string
	running int
	waiters []*gateWaiter // first come first served
	inTurns bool
}

// gateWaiter is one request waiting for a slot. granted and ahead are set,
// under the gate's lock, when a slot is handed to it; ready is closed then.
type gateWaiter struct {
	ready    chan struct{}
	granted  bool
	queuedAt uint64 // the gate's grants when it queued
	ahead    uint64 // slots handed to other requests while it waited
}

// newSlowHashGate returns a gate of n slots (at least 1) where one client
// holds at most half of them (at least 1), has at most queueMax requests
// waiting, each for at most wait.
func newSlowHashGate(n, queueMax int, wait time.Duration) *slowHashGate {
	n = max(1, n)
	return &slowHashGate{slots: n, share: max(1, n/2), queueMax: max(1, queueMax), wait: wait, clients: map[string]*gateClient{}}
}

// acquire takes a slot for client id, waiting its turn for at most g.wait;
// it reports false (and takes nothing) when the client already has
// queueMax requests waiting or the wait ran out.
func (g *slowHashGate) acquire(id string) bool {
	g.mu.Lock()
	c := g.clients[id]
	if c == nil {
		c = &gateClient{id: id}
		g.clients[id] = c
	}
	if g.busy < g.slots && c.running < g.share && len(c.waiters) == 0 {
		g.busy++
		g.grants++
		c.running++
		g.mu.Unlock()
		return true
	}
	if len(c.waiters) >= g.queueMax {
		g.mu.Unlock()
		g.refused.Add(1)
		return false
	}
	w := &gateWaiter{ready: make(chan struct{}), queuedAt: g.grants}
	c.waiters = append(c.waiters, w)
	if !c.inTurns {
		c.inTurns = true
		g.turns = append(g.turns, c)
	}
	g.waiting.Add(1)
	g.mu.Unlock()
	defer g.waiting.Add(-1)

	timer := time.NewTimer(g.wait)
	defer timer.Stop()
	select {
	case <-w.ready:
		return true
	case <-timer.C:
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if w.granted { // handed a slot as the timer fired
		return true
	}
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			break
		}
	}
	g.forgetIfIdle(c)
	g.refused.Add(1)
	return false
}

// release gives back a slot client id took and hands the free slots on.
func (g *slowHashGate) release(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.clients[id]
	c.running--
	g.busy--
	if c.inTurns && len(g.turns) > 1 {
		// Its own next request comes after every other client's.
		g.removeTurn(c)
		c.inTurns = true
		g.turns = append(g.turns, c)
	}
	g.dispatch()
	g.forgetIfIdle(c)
}

// dispatch hands free slots to waiting requests, one client at a time in
// turn, skipping clients at their share. The lock is held.
func (g *slowHashGate) dispatch() {
	for g.busy < g.slots {
		i := 0
		for i < len(g.turns) && (len(g.turns[i].waiters) == 0 || g.turns[i].running >= g.share) {
			if len(g.turns[i].waiters) == 0 { // its waiters gave up
				g.turns[i].inTurns = false
				g.turns = append(g.turns[:i], g.turns[i+1:]...)
				continue
			}
			i++
		}
		if i == len(g.turns) {
			return
		}
		c := g.turns[i]
		w := c.waiters[0]
		c.waiters = c.waiters[1:]
		w.granted, w.ahead = true, g.grants-w.queuedAt
		close(w.ready)
		c.running++
		g.busy++
		g.grants++
		// Its next request waits for every other client's turn.
		g.turns = append(g.turns[:i], g.turns[i+1:]...)
		if len(c.waiters) > 0 {
			g.turns = append(g.turns, c)
		} else {
			c.inTurns = false
		}
	}
}

// forgetIfIdle drops c once it neither holds nor waits for a slot, so the
// map holds only clients in the gate. The lock is held.
func (g *slowHashGate) forgetIfIdle(c *gateClient) {
	if c.running > 0 || len(c.waiters) > 0 {
		return
	}
	if c.inTurns {
		g.removeTurn(c)
	}
	if g.clients[c.id] == c {
		delete(g.clients, c.id)
	}
}

// removeTurn takes c out of the turns. The lock is held.
func (g *slowHashGate) removeTurn(c *gateClient) {
	for i, x := range g.turns {
		if x == c {
			g.turns = append(g.turns[:i], g.turns[i+1:]...)
			break
		}
	}
	c.inTurns = false
}

// verify runs check, the slow verification, counting it. The caller holds
// a slot.
func (g *slowHashGate) verify(check func() bool) bool {
	g.checks.Add(1)
	n := g.active.Add(1)
	defer g.active.Add(-1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	return check()
}
