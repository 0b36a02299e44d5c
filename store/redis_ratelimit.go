package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
)

// RedisErrorMode is what a take does when Redis cannot answer
// (SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR, SPEC §9).
type RedisErrorMode uint8

// Redis error modes.
const (
	// RedisErrorLocal falls back to the per-process bucket (the default).
	RedisErrorLocal RedisErrorMode = iota
	// RedisErrorAllow lets the request through unlimited.
	RedisErrorAllow
	// RedisErrorDeny refuses it: 503 rate_limit_unavailable.
	RedisErrorDeny
)

// String returns local, allow or deny.
func (m RedisErrorMode) String() string {
	switch m {
	case RedisErrorAllow:
		return "allow"
	case RedisErrorDeny:
		return "deny"
	}
	return "local"
}

// ParseRedisErrorMode parses local, allow or deny.
func ParseRedisErrorMode(s string) (RedisErrorMode, error) {
	for _, m := range []RedisErrorMode{RedisErrorLocal, RedisErrorAllow, RedisErrorDeny} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("%q is not local, allow or deny", s)
}

// ErrInvalidRedisURL is returned for a Redis URL that cannot be parsed. It
// never carries the URL, which may hold a password.
var ErrInvalidRedisURL = errors.New("not a redis://[user:pass@]host:port/db or rediss:// URL")

// ParseRedisURL checks a SCOPEGATE_REDIS_URL (redis://[user:pass@]host:port/db,
// rediss:// for TLS) and returns the client options it names.
func ParseRedisURL(s string) (*redis.Options, error) {
	o, err := redis.ParseURL(s)
	if err != nil {
		return nil, ErrInvalidRedisURL
	}
	return o, nil
}

// LocalBuckets is the per-process bucket a [RedisBuckets] falls back to
// (policy.Engine.TakeLocal).
type LocalBuckets interface {
	TakeLocal(id string, perMin int, now time.Time) policy.BucketAnswer
}

// RedisBucketsConfig configures [NewRedisBuckets].
type RedisBucketsConfig struct {
	URL       string // SCOPEGATE_REDIS_URL
	KeyPrefix string // SCOPEGATE_REDIS_KEY_PREFIX; keys are KeyPrefix + "rl:" + client id
	// Timeout bounds one take, connecting included (SCOPEGATE_REDIS_TIMEOUT).
	// Default 50ms.
	Timeout time.Duration
	OnError RedisErrorMode // SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR
	// Local answers while Redis cannot, with RedisErrorLocal. Required for it.
	Local LocalBuckets
	// RetryInterval is how long Redis is left alone after a failure before
	// one request tries it again (the breaker). Default 1s.
	RetryInterval time.Duration
	Metrics       *metrics.Set // if nil, a new set (see Metrics)
	Logger        *slog.Logger // if nil, logs are discarded
}

// RedisBuckets are token buckets shared by every replica through Redis
// (SPEC §9): GCRA in one Lua script per take, run atomically by Redis. A
// breaker keeps a failing Redis to one attempt per RetryInterval; meanwhile
// takes answer per OnError. It is safe for concurrent use.
type RedisBuckets struct {
	cfg       RedisBucketsConfig
	client    *redis.Client
	br        breaker
	m         redisMetrics
	stopped   chan struct{} // closed when the batcher has returned
	wake      chan struct{} // a take for an idle batcher, or Close
	mu        sync.Mutex    // guards the three below
	pending   []*takeReq    // takes waiting for the batcher
	idle      bool          // the batcher waits on wake
	closed    bool
	closeOnce sync.Once
	// keys and blob are the batcher's scratch for the script call's
	// arguments, reused from call to call.
	keys []string
	blob []byte
}

type redisMetrics struct {
	calls, errors *metrics.Counter
	fallbacks     *metrics.Counter
	seconds       *metrics.PrometheusHistogram
}

// NewRedisBuckets builds the shared buckets. It does not connect: the first
// take does, so a Redis that is down at start-up is handled like one that
// goes down later.
func NewRedisBuckets(cfg RedisBucketsConfig) (*RedisBuckets, error) {
	opt, err := ParseRedisURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnError == RedisErrorLocal && cfg.Local == nil {
		return nil, errors.New("store: RedisBucketsConfig.Local is required with RedisErrorLocal")
	}
	// One attempt per take, bounded by the take's context: no retries, no
	// extra commands on connect.
	opt.MaxRetries = -1
	opt.DialTimeout = max(cfg.Timeout, opt.DialTimeout)
	opt.ReadTimeout, opt.WriteTimeout = cfg.Timeout, cfg.Timeout
	opt.ContextTimeoutEnabled = true
	opt.DisableIdentity = true
	// RESP2: the script's reply is one bulk string either way, and RESP3
	// makes go-redis look for push notifications around every call.
	opt.Protocol = 2
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	quietRedis.Do(func() { redis.SetLogger(discardRedisLog{}) })
	r := &RedisBuckets{cfg: cfg, client: redis.NewClient(opt), wake: make(chan struct{}, 1),
		stopped: make(chan struct{})}
	s := cfg.Metrics
	r.m = redisMetrics{
		calls:     s.GetOrCreateCounter(`scopegate_redis_calls_total`),
		errors:    s.GetOrCreateCounter(`scopegate_redis_errors_total`),
		fallbacks: s.GetOrCreateCounter(`scopegate_rate_limit_fallbacks_total{mode="` + cfg.OnError.String() + `"}`),
		seconds: s.GetOrCreatePrometheusHistogramExt(`scopegate_redis_duration_seconds`,
			[]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25}),
	}
	s.GetOrCreateGauge(`scopegate_redis_breaker_open`, func() float64 {
		if r.br.isOpen() {
			return 1
		}
		return 0
	})
	go r.batcher()
	return r, nil
}

// quietRedis silences go-redis's own log (dial and pool errors on stderr):
// failures are logged once per outage by Take and counted in the metrics.
var quietRedis sync.Once

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// Metrics returns the set the Redis series are registered in.
func (r *RedisBuckets) Metrics() *metrics.Set { return r.cfg.Metrics }

// Close stops the batcher and closes the connections; takes after it fall
// back.
func (r *RedisBuckets) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.unlockWaking()
		<-r.stopped
		err = r.client.Close()
	})
	return err
}

// gcraScript is the shared bucket (SPEC §9): GCRA for a batch of takes in
// one atomic call. KEYS[i] is take i's key (a key may come more than once:
// its takes run in order, the later ones reading what the earlier wrote;
// the keys are read with one MGET); ARGV[1] holds, per take, two
// little-endian doubles: the request's time (unix µs) and the limit N per
// minute.
//
// A bucket is its debt: how far (µs) its theoretical arrival time is ahead
// of now; 0 is full, and a take adds 60s/N. A take is allowed when the
// debt after it is at most 60s (a 2 µs slack absorbs float rounding). The
// debt is kept relative, not as an absolute time, so it stays exact for
// any N: at unix µs a double's resolution is 0.25 µs, coarser than 60s/N
// for N above ~2.4e8. When N changed since the last take, the bucket
// keeps the whole tokens it had left, at most N (as the per-process bucket
// does). The key expires when the bucket would be full again.
//
// The value is 25 bytes: 1, then the time it was written at, the debt
// then and N, as little-endian doubles; the text "<tat> <N>" of earlier
// versions is still read. The reply holds one little-endian double per
// take: the debt after it, negated when the take was refused (a refused
// take's debt is above 60s, a taken one's at least 60s/N: never zero).
//
// Binary numbers, not text: formatting and parsing doubles (printf's
// %.17g, strtod) and one argument and one reply element per number were
// the largest part of the script's cost per take after its redis.call
// (bench/RESULTS.md, session 7).
var gcraScript = redis.NewScript(`
local period = 60000000
local sunpack, pack, byte, sub, find = struct.unpack, struct.pack, string.byte, string.sub, string.find
local tonumber, floor, ceil, max, min = tonumber, math.floor, math.ceil, math.max, math.min
local call = redis.call
local args, pos = ARGV[1], 1
local out, cur = {}, {}
local vals = call('MGET', unpack(KEYS))
for i = 1, #KEYS do
  local key = KEYS[i]
  local now, n
  now, n, pos = sunpack('<dd', args, pos)
  local step = period / n
  local debt = 0
  local changed = false
  local v = cur[key]
  if v == nil then v = vals[i] end
  if v then
    local d, m
    if #v == 25 and byte(v, 1) == 1 then
      local at
      at, d, m = sunpack('<ddd', v, 2)
      d = d - (now - at)
    else
      local sp = find(v, ' ', 1, true)
      if sp then
        local s = tonumber(sub(v, 1, sp - 1))
        m = tonumber(sub(v, sp + 1))
        if s then d = s - now end
      end
    end
    if d and m and m > 0 then
      if m == n then
        if d > 0 then debt = d end
      else
        local left = floor(m * (period - max(d, 0)) / period + 1e-9)
        left = max(0, min(left, n))
        debt = period - left * step
        changed = true
      end
    end
  end
  local new = debt + step
  if new <= period + 2 then
    local w = pack('<Bddd', 1, now, new, n)
    call('SET', key, w, 'PX', max(1, ceil(new / 1000)))
    cur[key] = w
    out[i] = pack('<d', new)
  else
    if changed then
      local w = pack('<Bddd', 1, now, debt, n)
      call('SET', key, w, 'PX', max(1, ceil(debt / 1000)))
      cur[key] = w
    end
    out[i] = pack('<d', -debt)
  end
end
return table.concat(out)
`)

// maxBatch bounds the takes of one script call.
const maxBatch = 256

// takeReq is one take waiting for its batch. Pooled with its channel.
type takeReq struct {
	key      string
	perMin   int
	now      int64 // unix µs
	deadline time.Time
	a        policy.BucketAnswer
	err      error
	done     chan struct{}
}

var takePool = sync.Pool{New: func() any { return &takeReq{done: make(chan struct{}, 1)} }}

// Take takes one token at now from client id's shared bucket of capacity
// perMin. Concurrent takes share script calls: one batcher sends whatever
// takes queued while the previous call was out (up to 256), so under load a
// request costs a fraction of a round trip. When Redis fails or is slower
// than the timeout, or the breaker holds it off, the answer follows OnError.
func (r *RedisBuckets) Take(id string, perMin int, now time.Time) policy.BucketAnswer {
	t0 := time.Now()
	if !r.br.try(t0) {
		return r.fallback(id, perMin, now)
	}
	q := takePool.Get().(*takeReq)
	q.key, q.perMin, q.now, q.deadline = r.cfg.KeyPrefix+"rl:"+id, perMin, now.UnixMicro(), t0.Add(r.cfg.Timeout)
	if !r.enqueue(q) {
		*q = takeReq{done: q.done}
		takePool.Put(q)
		return r.fallback(id, perMin, now) // closed
	}
	<-q.done
	a, err := q.a, q.err
	*q = takeReq{done: q.done}
	takePool.Put(q)
	if err == errClosed {
		return r.fallback(id, perMin, now) // closing: no outage to report
	}
	if err != nil {
		if r.br.fail(time.Now(), r.cfg.RetryInterval) {
			r.cfg.Logger.Warn("redis rate limit unavailable; falling back until it answers",
				slog.String("on_redis_error", r.cfg.OnError.String()), slog.String("err", err.Error()))
		}
		return r.fallback(id, perMin, now)
	}
	if r.br.succeed() {
		r.cfg.Logger.Info("redis rate limit answers again")
	}
	return a
}

var errClosed = errors.New("redis rate limit: closed")

// enqueue queues q for the batcher, waking it if it waits; false after
// Close. A mutex and a slice, not a channel: a take costs one uncontended
// lock instead of a select over two channels, and the batcher is woken
// only when it has nothing to send.
func (r *RedisBuckets) enqueue(q *takeReq) bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	r.pending = append(r.pending, q)
	r.unlockWaking()
	return true
}

// unlockWaking releases r.mu and wakes the batcher if it waits.
func (r *RedisBuckets) unlockWaking() {
	wake := r.idle
	r.idle = false
	r.mu.Unlock()
	if wake {
		r.wake <- struct{}{} // never blocks: one token per idle spell
	}
}

// fresh reports whether q has used less than a tenth of its timeout, so
// the batcher may still yield before sending it: on saturated cores a
// yield can cost a scheduling round, and a take past its deadline would
// open the breaker.
func (r *RedisBuckets) fresh(q *takeReq) bool {
	return time.Until(q.deadline) > r.cfg.Timeout-r.cfg.Timeout/10
}

// batchYields is how many times, at most, the batcher yields its core
// before taking the queue, as long as the queue grows: requests already
// running on a core that are about to take then join this call instead
// of the next. At 15,000 requests/s on 2 cores this raised the takes per
// call from 14–15 to 20–22 and cut Redis's CPU per request by about a
// tenth; when nothing else is runnable a yield returns at once.
const batchYields = 3

// batcher sends the queued takes, one script call at a time (up to
// maxBatch takes each), until Close; takes still queued then are answered
// errClosed. It does not wait for more than batchYields: under load the
// takes that queue during one call fill the next (the bench measured 20–22
// per call at 15,000–20,000 requests/s), and a lone request goes out at
// once.
func (r *RedisBuckets) batcher() {
	defer close(r.stopped)
	var batch []*takeReq
	for {
		r.mu.Lock()
		for len(r.pending) == 0 && !r.closed {
			r.idle = true
			r.mu.Unlock()
			<-r.wake
			r.mu.Lock()
		}
		for i, n := 0, 0; i < batchYields && len(r.pending) > n && len(r.pending) < maxBatch && r.fresh(r.pending[0]); i++ {
			n = len(r.pending)
			r.mu.Unlock()
			runtime.Gosched()
			r.mu.Lock()
		}
		closed := r.closed
		batch, r.pending = r.pending, batch[:0]
		r.mu.Unlock()
		if closed {
			for _, q := range batch {
				q.err = errClosed
				q.done <- struct{}{}
			}
			return
		}
		for i := 0; i < len(batch); i += maxBatch {
			r.send(batch[i:min(i+maxBatch, len(batch))])
		}
	}
}

// send runs one script call for batch and answers every take in it. Takes
// already past their deadline are answered with an error unsent; the call
// is bounded by the earliest deadline left.
func (r *RedisBuckets) send(batch []*takeReq) {
	now := time.Now()
	live := batch[:0] // filtered in place: batch is the batcher's own
	var deadline time.Time
	for _, q := range batch {
		if !now.Before(q.deadline) {
			q.err = context.DeadlineExceeded
			q.done <- struct{}{}
			continue
		}
		if deadline.IsZero() || q.deadline.Before(deadline) {
			deadline = q.deadline
		}
		live = append(live, q)
	}
	if len(live) == 0 {
		return
	}
	keys, blob := r.keys[:0], r.blob[:0]
	for _, q := range live {
		keys = append(keys, q.key)
		blob = binary.LittleEndian.AppendUint64(blob, math.Float64bits(float64(q.now)))
		blob = binary.LittleEndian.AppendUint64(blob, math.Float64bits(float64(q.perMin)))
	}
	r.keys, r.blob = keys, blob
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	res, err := gcraScript.Run(ctx, r.client, keys, blob).Text()
	cancel()
	r.m.calls.Inc()
	r.m.seconds.UpdateDuration(now)
	if err == nil && len(res) != 8*len(live) {
		err = fmt.Errorf("redis rate limit script: %d bytes in the reply, want %d", len(res), 8*len(live))
	}
	if err != nil {
		r.m.errors.Inc()
	}
	for i, q := range live {
		if q.err = err; err == nil {
			q.a = gcraAnswer(math.Float64frombits(le64(res[8*i:])), q.perMin)
		}
		q.done <- struct{}{}
	}
}

// le64 reads a little-endian uint64 from the first 8 bytes of s.
func le64(s string) uint64 { return binary.LittleEndian.Uint64(bytesconv.Bytes(s)) }

// gcraAnswer reads one take's part of the script's reply: the bucket's
// debt after it (µs), negated when the take was refused.
func gcraAnswer(debt float64, perMin int) policy.BucketAnswer {
	a := policy.BucketAnswer{Status: policy.BucketTaken}
	if debt < 0 {
		a.Status, debt = policy.BucketRefused, -debt
	}
	const period = 60e6 // µs
	a.Tokens = float64(perMin) * (period - debt) / period
	return a
}

// fallback answers a take Redis could not, per OnError.
func (r *RedisBuckets) fallback(id string, perMin int, now time.Time) policy.BucketAnswer {
	r.m.fallbacks.Inc()
	switch r.cfg.OnError {
	case RedisErrorAllow:
		return policy.BucketAnswer{Status: policy.BucketUnlimited}
	case RedisErrorDeny:
		return policy.BucketAnswer{Status: policy.BucketUnavailable}
	}
	return r.cfg.Local.TakeLocal(id, perMin, now)
}

// breaker keeps a failing Redis to one attempt per interval: after a failure
// it is open until then; the first take past it probes Redis (the others
// still fall back), and the probe's success closes it.
type breaker struct {
	openUntil atomic.Int64 // unix nanos; 0: closed
	probing   atomic.Bool
}

// try reports whether a take may call Redis at now.
func (b *breaker) try(now time.Time) bool {
	u := b.openUntil.Load()
	if u == 0 {
		return true
	}
	return now.UnixNano() >= u && b.probing.CompareAndSwap(false, true)
}

// fail opens the breaker until now+interval; it reports whether it was
// closed (the first failure, worth a log line).
func (b *breaker) fail(now time.Time, interval time.Duration) bool {
	was := b.openUntil.Swap(now.Add(interval).UnixNano())
	b.probing.Store(false)
	return was == 0
}

// succeed closes the breaker; it reports whether it was open.
func (b *breaker) succeed() bool {
	if b.openUntil.Load() == 0 {
		return false
	}
	was := b.openUntil.Swap(0)
	b.probing.Store(false)
	return was != 0
}

// isOpen reports whether Redis is being left alone.
func (b *breaker) isOpen() bool { return b.openUntil.Load() != 0 }
