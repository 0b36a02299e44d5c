package policy

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateRequests starts one acquire per id on g, each in its own goroutine,
// waits until all of them wait, and returns a channel that receives the
// index of each request as it is granted (or -1-i when refused).
func gateRequests(t *testing.T, g *slowHashGate, ids ...string) <-chan int {
	t.Helper()
	out := make(chan int, len(ids))
	before := g.waiting.Load()
	for i, id := range ids {
		go func() {
			if g.acquire(id) {
				out <- i
			} else {
				out <- -1 - i
			}
		}()
		// One at a time, so the order they queue in is known.
		waitFor(t, "the request to wait", func() bool { return g.waiting.Load() == before+int64(i)+1 })
	}
	return out
}

// TestSlowHashGateTurns: with one slot held by client a and five more
// requests of a waiting, a request of b that arrives last is the next to
// get the slot: a freed slot goes to the client whose turn it is, and the
// client that just used it goes to the back. Then a and b alternate.
func TestSlowHashGateTurns(t *testing.T) {
	g := newSlowHashGate(1, 16, time.Hour)
	if !g.acquire("a") {
		t.Fatal("free slot refused")
	}
	granted := gateRequests(t, g, "a", "a", "a", "a", "a", "b")
	owner := []string{"a", "a", "a", "a", "a", "b"}
	var order []string
	current := "a"
	for range owner {
		g.release(current)
		i := <-granted
		if i < 0 {
			t.Fatalf("request %d refused", -1-i)
		}
		current = owner[i]
		order = append(order, current)
	}
	g.release(current)
	if want := []string{"b", "a", "a", "a", "a", "a"}; fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("slots went to %v, want %v", order, want)
	}
	if len(g.clients) != 0 || len(g.turns) != 0 || g.busy != 0 {
		t.Errorf("idle gate keeps clients %v, turns %d, busy %d", g.clients, len(g.turns), g.busy)
	}
}

// TestSlowHashGateShare: one client holds at most half the slots; the rest
// stay for others even while it has requests waiting.
func TestSlowHashGateShare(t *testing.T) {
	g := newSlowHashGate(4, 16, time.Hour)
	for i := 0; i < 2; i++ {
		if !g.acquire("a") {
			t.Fatalf("a's request %d refused with slots free", i)
		}
	}
	granted := gateRequests(t, g, "a") // a is at its share of 2: waits
	for i := 0; i < 2; i++ {
		if !g.acquire(fmt.Sprint("other", i)) {
			t.Fatalf("another client refused while a holds its share")
		}
	}
	select {
	case i := <-granted:
		t.Fatalf("a's third request got a slot (%d) beyond its share", i)
	default:
	}
	g.release("a")
	if i := <-granted; i != 0 {
		t.Fatalf("a's waiting request: %d", i)
	}
}

// TestSlowHashGateBounds: a client's requests past queueMax are refused at
// once, others still queue; a request that gets no slot within the wait is
// refused and leaves nothing behind.
func TestSlowHashGateBounds(t *testing.T) {
	g := newSlowHashGate(1, 2, time.Hour)
	g.acquire("holder")
	gateRequests(t, g, "a", "a")
	if g.acquire("a") {
		t.Fatal("a request past the client's queue bound got a slot")
	}
	if n := g.refused.Load(); n != 1 {
		t.Errorf("refused = %d, want 1", n)
	}
	gateRequests(t, g, "b") // another client still queues

	short := newSlowHashGate(1, 2, 20*time.Millisecond)
	short.acquire("holder")
	if short.acquire("a") {
		t.Fatal("a request got a slot held throughout its wait")
	}
	if len(short.clients) != 1 || len(short.turns) != 0 || short.waiting.Load() != 0 {
		t.Errorf("a request that gave up left clients %v, turns %d, waiting %d", short.clients, len(short.turns), short.waiting.Load())
	}
	short.release("holder")
	if !short.acquire("a") {
		t.Fatal("free slot refused after a request gave up")
	}
}

// floodGuesses starts n goroutines that send victim distinct wrong guesses
// back to back, each pausing pause after an answer, and hands every
// decision to seen (when not nil), until the returned stop is called.
func floodGuesses(e *Engine, victim *Client, n int, pause time.Duration, seen func(Decision)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				d := decideAPIKey(e, apiReq("GET", "/x", fmt.Sprintf("%s.guess-%d-%d", victim.ClientKey, w, i)), func(string) *Client { return victim })
				if seen != nil {
					seen(d)
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// TestSlowHashFloodDoesNotDelayOthers: while 24 goroutines send a bcrypt
// client wrong guesses as fast as they can, another bcrypt client's request,
// once it waits in the gate, gets the slot's next grant: it waits for the
// verification holding the slot, not for the flood's queue. Before the gate
// took turns, it waited behind every queued guess. What is counted is the
// grants the gate made while the request waited, not the checks that ran
// while its goroutine did: on a loaded machine the flood's checks run while
// that goroutine waits for a core, which says nothing about the gate.
func TestSlowHashFloodDoesNotDelayOthers(t *testing.T) {
	e := mustEngine(t, EngineConfig{SlowHashConcurrency: 1, SlowHashWait: time.Hour})
	victim := bcryptClient(t)
	var refusedFlood atomic.Int64
	defer floodGuesses(e, victim, 24, 0, func(d Decision) {
		switch d.Reason {
		case ReasonAPIKeyInvalid:
		case ReasonRateLimited:
			refusedFlood.Add(1)
		default:
			t.Errorf("guess: %v", d.Reason)
		}
	})()
	waitFor(t, "the flood to fill the victim's queue", func() bool { return e.slow.waiting.Load() >= defaultSlowHashQueue })

	var w *gateWaiter
	var d Decision
	for try := 0; w == nil && try < 20; try++ { // a try the poll missed (granted at once, or between two looks) is run again
		good := bcryptClient(t)
		good.ID, good.ClientKey = fmt.Sprintf("good-%d", try), "g"
		w, d = queuedWaiter(e, good)
	}
	if w == nil {
		t.Fatal("the good client was never seen waiting in the gate in 20 tries")
	}
	if !d.Allowed() {
		t.Fatalf("good client's first check: %v", d.Reason)
	}
	e.slow.mu.Lock()
	granted, ahead := w.granted, w.ahead
	e.slow.mu.Unlock()
	// Its turn comes at the first release: the slot's next grant is its own.
	if !granted || ahead != 0 {
		t.Errorf("the good client's request was granted %v after %d grants to the flood, want granted after 0 (the slot's next grant)", granted, ahead)
	}
	// The flood's excess was refused (429), not queued.
	waitFor(t, "a flood request refused for the full queue", func() bool { return refusedFlood.Load() > 0 })
	if d := ReasonRateLimited; d.Status() != 429 {
		t.Errorf("rate_limited is %d, want 429", d.Status())
	}
}

// queuedWaiter decides a request of good's (secret "good") and returns the
// gate's waiter for it, seen under the gate's lock while it waited, with the
// decision; a nil waiter when the gate was never seen holding it waiting
// (granted at once, or between two looks).
func queuedWaiter(e *Engine, good *Client) (*gateWaiter, Decision) {
	answer := make(chan Decision, 1)
	go func() {
		answer <- decideAPIKey(e, apiReq("GET", "/x", good.ClientKey+".good"), func(string) *Client { return good })
	}()
	for {
		var w *gateWaiter
		e.slow.mu.Lock()
		if c := e.slow.clients[good.ID]; c != nil && len(c.waiters) == 1 {
			w = c.waiters[0]
		}
		e.slow.mu.Unlock()
		if w != nil {
			return w, <-answer
		}
		select {
		case d := <-answer:
			return nil, d
		default:
			runtime.Gosched()
		}
	}
}
