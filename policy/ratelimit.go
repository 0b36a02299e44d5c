package policy

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// bucketTable holds one token bucket per client id (SPEC §3
// rate_limit_per_min: capacity N, refilled at N/60 per second). A bucket is
// rebuilt when the client's limit changes, keeping the tokens it had left.
type bucketTable struct {
	mu sync.RWMutex
	m  map[string]*bucket
}

type bucket struct {
	lim    *rate.Limiter
	perMin int
	last   atomic.Int64 // unix nanoseconds of the last use
}

// take consumes one token of client id's bucket at now and returns the
// numbers of the RateLimit headers. It does not allocate once the bucket
// exists.
func (t *bucketTable) take(id string, perMin int, now time.Time) (bool, RateLimitState) {
	t.mu.RLock()
	b := t.m[id]
	t.mu.RUnlock()
	if b == nil || b.perMin != perMin {
		t.mu.Lock()
		if t.m == nil {
			t.m = make(map[string]*bucket)
		}
		b = t.m[id]
		if b == nil || b.perMin != perMin {
			nb := &bucket{lim: rate.NewLimiter(rate.Limit(float64(perMin)/60), perMin), perMin: perMin}
			if b != nil {
				// The limit changed: the new bucket starts with the tokens
				// the old one had left (at most its capacity), so a change
				// never hands out a fresh burst.
				left := max(0, math.Floor(b.lim.TokensAt(now)))
				if used := perMin - int(min(left, float64(perMin))); used > 0 {
					nb.lim.AllowN(now, used)
				}
			}
			// Used now, before it is published: a sweep in between must
			// not take it for idle.
			nb.last.Store(now.UnixNano())
			b = nb
			t.m[id] = b
		}
		t.mu.Unlock()
	}
	b.last.Store(now.UnixNano())
	ok := b.lim.AllowN(now, 1)
	tokens := b.lim.TokensAt(now)
	if tokens < 0 {
		tokens = 0
	}
	perSec := float64(perMin) / 60
	st := RateLimitState{
		Applied:   true,
		Limit:     perMin,
		Remaining: int(math.Floor(tokens + 1e-9)),
		ResetSecs: ceilSecs((float64(perMin) - tokens) / perSec),
	}
	if st.Remaining > perMin {
		st.Remaining = perMin
	}
	if !ok {
		st.RetryAfter = max(1, ceilSecs((1-tokens)/perSec))
	}
	return ok, st
}

// ceilSecs rounds seconds up, ignoring float noise.
func ceilSecs(s float64) int {
	if s <= 1e-9 {
		return 0
	}
	return int(math.Ceil(s - 1e-9))
}

// sweep removes buckets unused since before now-idle. Idle is at least a
// minute, the longest any bucket takes to refill, so dropping a bucket never
// grants more than a full one would.
func (t *bucketTable) sweep(now time.Time, idle time.Duration) int {
	idle = max(idle, time.Minute)
	cut := now.Add(-idle).UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for id, b := range t.m {
		if b.last.Load() < cut {
			delete(t.m, id)
			n++
		}
	}
	return n
}

// len returns the number of buckets.
func (t *bucketTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// SweepRateLimits drops token buckets of clients idle for at least idle
// (never less than one minute, so a dropped bucket was full anyway). Call it
// periodically, for example every minute; it returns how many were dropped.
func (e *Engine) SweepRateLimits(now time.Time, idle time.Duration) int {
	return e.buckets.sweep(now, idle)
}
