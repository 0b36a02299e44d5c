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

// take consumes one token of client id's bucket at now. It does not
// allocate once the bucket exists.
func (t *bucketTable) take(id string, perMin int, now time.Time) BucketAnswer {
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
	a := BucketAnswer{Status: BucketRefused}
	if b.lim.AllowN(now, 1) {
		a.Status = BucketTaken
	}
	a.Tokens = b.lim.TokensAt(now)
	return a
}

// BucketStatus is what a token bucket did with one take.
type BucketStatus uint8

// Bucket statuses. The zero status refuses: nothing passes by accident.
const (
	// BucketRefused: no whole token was left (429 rate_limited).
	BucketRefused BucketStatus = iota
	// BucketTaken: one token was taken.
	BucketTaken
	// BucketUnlimited: the shared bucket could not be asked and the
	// operator chose to let requests through unlimited
	// (SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR=allow); no RateLimit headers.
	BucketUnlimited
	// BucketUnavailable: the shared bucket could not be asked and the
	// operator chose to refuse (ON_REDIS_ERROR=deny): 503
	// rate_limit_unavailable.
	BucketUnavailable
)

// BucketAnswer is a token bucket's answer to one take, from the engine's own
// per-process buckets ([Engine.TakeLocal]) or from a shared store (SPEC §9).
// [ApplyBucket] turns it into the decision and its RateLimit headers, so both
// kinds of bucket answer with the same headers.
type BucketAnswer struct {
	Status BucketStatus
	// Tokens is what the bucket holds after the take (when refused: at the
	// time of the take, below one), in fractions of a token; at most the
	// capacity.
	Tokens float64
}

// TakeLocal takes one token at now from the engine's per-process bucket of
// client id, of capacity perMin refilled at perMin/60 per second (SPEC §3).
// A bucket whose perMin changed keeps the whole tokens it had left, at most
// the new capacity. It does not allocate once the bucket exists.
func (e *Engine) TakeLocal(id string, perMin int, now time.Time) BucketAnswer {
	return e.buckets.take(id, perMin, now)
}

// ApplyBucket completes d, an allowing decision for which
// [Engine.CheckClient] returned limit > 0, with the answer of the client's
// bucket ([Engine.FinishClient] calls it): the numbers of the RateLimit headers (SPEC §5) and, when the
// bucket refused, 429 rate_limited with Retry-After; when the shared bucket
// is unavailable, 503 rate_limit_unavailable (no headers); when the operator
// let requests through unlimited, d unchanged.
func ApplyBucket(d Decision, limit int, a BucketAnswer) Decision {
	switch a.Status {
	case BucketUnlimited:
		return d
	case BucketUnavailable:
		d.Verdict, d.Reason, d.Identity = Deny, ReasonRateLimitUnavailable, Identity{}
		return d
	}
	tokens := min(max(a.Tokens, 0), float64(limit))
	perSec := float64(limit) / 60
	d.RateLimit = RateLimitState{
		Applied:   true,
		Limit:     limit,
		Remaining: int(math.Floor(tokens + 1e-9)),
		ResetSecs: ceilSecs((float64(limit) - tokens) / perSec),
	}
	if a.Status != BucketTaken {
		d.RateLimit.RetryAfter = max(1, ceilSecs((1-tokens)/perSec))
		d.Verdict, d.Reason, d.Identity = Deny, ReasonRateLimited, Identity{}
	}
	return d
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
