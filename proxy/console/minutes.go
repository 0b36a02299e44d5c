package console

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopegate/scopegate/policy"
)

// window is how many minutes the console remembers.
const window = 60

// minute counts the decisions of one wall-clock minute. The 60 slots are
// reused in turn: the first decision of a new minute clears the slot it
// lands on (under the slot's mutex, once a minute).
type minute struct {
	mu      sync.Mutex   // taken only to roll the slot over
	at      atomic.Int64 // the unix minute held
	allowed atomic.Uint64
	denied  atomic.Uint64
	reasons reasonCounts
	latency histogram
}

// minuteAt returns the slot of t's minute, cleared if it held an older one.
func (c *Console) minuteAt(t time.Time) *minute {
	m := t.Unix() / 60
	s := &c.minutes[uint64(m)%window]
	if s.at.Load() != m {
		s.roll(m)
	}
	return s
}

// roll clears s for minute m, unless it already holds m or a later minute
// (a late decision of an older minute is then counted in the newer one).
func (s *minute) roll(m int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.at.Load() >= m {
		return
	}
	s.allowed.Store(0)
	s.denied.Store(0)
	for i := range s.reasons {
		s.reasons[i].Store(0)
	}
	s.latency.reset()
	s.at.Store(m)
}

func (s *minute) add(r policy.Reason, took time.Duration) {
	if r == policy.ReasonNone {
		s.allowed.Add(1)
	} else {
		s.denied.Add(1)
		s.reasons[reasonIndex(r)].Add(1)
	}
	s.latency.add(took)
}

// histogram counts durations in log-linear buckets: four per power of two
// from 1 µs (about 1 024 ns) to about 69 s, so a quantile is within about
// 12% of the true value. Bucket 0 holds everything under 1 024 ns.
type histogram struct {
	n [histBuckets]atomic.Uint64
}

const (
	histMinExp  = 10 // 2^10 ns
	histMaxExp  = 35 // up to 2^36 ns
	histBuckets = (histMaxExp-histMinExp+1)*4 + 1
)

// bucketOf returns the bucket of d.
func bucketOf(d time.Duration) int {
	ns := uint64(max(d, 0))
	if ns < 1<<histMinExp {
		return 0
	}
	e := bits.Len64(ns) - 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	sub := int(ns>>(e-2)) & 3
	return (e-histMinExp)*4 + sub + 1
}

// bucketMid returns the middle of bucket i in nanoseconds.
func bucketMid(i int) float64 {
	if i == 0 {
		return 512
	}
	e, sub := (i-1)/4+histMinExp, uint64((i-1)%4)
	lo := (4 + sub) << (e - 2)
	hi := (5 + sub) << (e - 2)
	return float64(lo+hi) / 2
}

func (h *histogram) add(d time.Duration) { h.n[bucketOf(d)].Add(1) }

func (h *histogram) reset() {
	for i := range h.n {
		h.n[i].Store(0)
	}
}

// counts is a plain copy of a histogram, for merging and quantiles.
type counts [histBuckets]uint64

func (h *histogram) addTo(c *counts) {
	for i := range h.n {
		c[i] += h.n[i].Load()
	}
}

// quantileMs returns the q quantile (0 < q ≤ 1) in milliseconds, and false
// when there is no sample.
func (c *counts) quantileMs(q float64) (float64, bool) {
	var total uint64
	for _, n := range c {
		total += n
	}
	if total == 0 {
		return 0, false
	}
	rank := uint64(q*float64(total) + 0.999999)
	var cum uint64
	for i, n := range c {
		cum += n
		if cum >= rank {
			return bucketMid(i) / 1e6, true
		}
	}
	return bucketMid(histBuckets-1) / 1e6, true
}

// minuteView is one entry of /api/v1/overview's minutes.
type minuteView struct {
	T       string            `json:"t"`
	Allowed uint64            `json:"allowed"`
	Denied  uint64            `json:"denied"`
	Reasons map[string]uint64 `json:"reasons"`
	// LatencyMs is the minute's decision latency.
	LatencyMs latencyView `json:"latency_ms"`
}

// latencyView is a p50/p99 pair in milliseconds, both null without a
// sample.
type latencyView struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
}

func (c *counts) latency() latencyView {
	p50, ok := c.quantileMs(0.50)
	if !ok {
		return latencyView{}
	}
	p99, _ := c.quantileMs(0.99)
	p50, p99 = round3(p50), round3(p99)
	return latencyView{P50: &p50, P99: &p99}
}

func round3(f float64) float64 {
	return float64(int64(f*1000+0.5)) / 1000
}

// lastHour returns the last 60 minutes up to now's, oldest first, and the
// latency over all of them.
func (c *Console) lastHour(now time.Time) ([]minuteView, latencyView) {
	cur := now.Unix() / 60
	out := make([]minuteView, 0, window)
	var all counts
	for m := cur - window + 1; m <= cur; m++ {
		v := minuteView{T: time.Unix(m*60, 0).UTC().Format(time.RFC3339), Reasons: map[string]uint64{}}
		s := &c.minutes[uint64(m)%window]
		if s.at.Load() == m {
			var one counts
			v.Allowed, v.Denied = s.allowed.Load(), s.denied.Load()
			v.Reasons = s.reasons.snapshot()
			s.latency.addTo(&one)
			v.LatencyMs = one.latency()
			for i, n := range one {
				all[i] += n
			}
		}
		out = append(out, v)
	}
	return out, all.latency()
}
