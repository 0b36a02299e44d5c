package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

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
	queue     chan *takeReq // takes waiting for the batcher
	quit      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the batcher has returned
	closeOnce sync.Once
	// keys and args are the batcher's scratch for the script call's
	// arguments, reused from call to call.
	keys []string
	args []any
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
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	quietRedis.Do(func() { redis.SetLogger(discardRedisLog{}) })
	r := &RedisBuckets{cfg: cfg, client: redis.NewClient(opt), queue: make(chan *takeReq, 4*maxBatch),
		quit: make(chan struct{}), stopped: make(chan struct{})}
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
		close(r.quit)
		<-r.stopped
		err = r.client.Close()
	})
	return err
}

// gcraScript is the shared bucket (SPEC §9): GCRA with the theoretical
// arrival time (TAT) in microseconds, for a batch of takes in one atomic
// call. For take i, KEYS[i] is the client's key, ARGV[2i-1] the request's
// time (unix µs) and ARGV[2i] the limit N per minute; a key may come more
// than once (its takes run in order). The value is "<tat> <N>". A bucket is
// full when tat ≤ now; a take is allowed when tat + 60s/N ≤ now + 60s (a
// 2 µs slack absorbs float rounding). The key expires when the bucket would
// be full again. When N changed since the last take, the bucket keeps the
// whole tokens it had left, at most N (as the per-process bucket does). The
// reply holds, per take, taken (1|0) and the TAT after it (µs, as a string:
// Lua numbers are doubles, RESP integers are not); the caller subtracts
// its now, as the script would. One number formatted per take, the one
// stored, and the library functions held in locals (a global lookup per
// call is a table read in Redis's sandbox): together about a quarter of
// the script's CPU per take (bench/RESULTS.md, session 6).
var gcraScript = redis.NewScript(`
local period = 60000000
local tonumber, find, sub, format = tonumber, string.find, string.sub, string.format
local floor, ceil, max, min, call = math.floor, math.ceil, math.max, math.min, redis.call
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local now = tonumber(ARGV[2 * i - 1])
  local ns = ARGV[2 * i]
  local n = tonumber(ns)
  local step = period / n
  local tat = now
  local changed = false
  local v = call('GET', key)
  if v then
    local sp = find(v, ' ', 1, true)
    local s, m
    if sp then
      s, m = tonumber(sub(v, 1, sp - 1)), tonumber(sub(v, sp + 1))
    end
    if s and m and m > 0 then
      if m == n then
        if s > now then tat = s end
      else
        local left = floor(m * (period - max(s - now, 0)) / period + 1e-9)
        left = max(0, min(left, n))
        tat = now + period - left * step
        changed = true
      end
    end
  end
  local new = tat + step
  if new - now <= period + 2 then
    local sv = format('%.17g', new)
    call('SET', key, sv .. ' ' .. ns, 'PX', max(1, ceil((new - now) / 1000)))
    out[2 * i - 1] = 1
    out[2 * i] = sv
  else
    local sv = format('%.17g', tat)
    if changed then
      call('SET', key, sv .. ' ' .. ns, 'PX', max(1, ceil((tat - now) / 1000)))
    end
    out[2 * i - 1] = 0
    out[2 * i] = sv
  end
end
return out
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
	select {
	case r.queue <- q:
	case <-r.quit:
		q.err = errClosed
		q.done <- struct{}{}
	}
	select {
	case <-q.done:
	case <-r.stopped:
		// Closed with q still queued: nobody will answer it (and q is
		// not pooled again).
		return r.fallback(id, perMin, now)
	}
	a, err := q.a, q.err
	*q = takeReq{done: q.done}
	takePool.Put(q)
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

// batcher sends the queued takes, one script call at a time, until Close.
// It does not wait for more: under load the takes that queue during one
// call fill the next (the bench measured 21 per call at 20,000 requests/s),
// and a lone request goes out at once.
func (r *RedisBuckets) batcher() {
	defer close(r.stopped)
	batch := make([]*takeReq, 0, maxBatch)
	for {
		select {
		case q := <-r.queue:
			batch = append(batch[:0], q)
		case <-r.quit:
			return
		}
		r.send(r.drain(batch))
	}
}

// drain appends the takes queued now to batch, up to maxBatch.
func (r *RedisBuckets) drain(batch []*takeReq) []*takeReq {
	for len(batch) < maxBatch {
		select {
		case q := <-r.queue:
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
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
	keys, args := r.keys[:0], r.args[:0]
	for _, q := range live {
		keys = append(keys, q.key)
		args = append(args, q.now, q.perMin)
	}
	r.keys, r.args = keys, args
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	res, err := gcraScript.Run(ctx, r.client, keys, args...).Slice()
	cancel()
	r.m.calls.Inc()
	r.m.seconds.UpdateDuration(now)
	if err == nil && len(res) != 2*len(live) {
		err = fmt.Errorf("redis rate limit script: %d values in the reply, want %d", len(res), 2*len(live))
	}
	if err != nil {
		r.m.errors.Inc()
	}
	for i, q := range live {
		if q.err = err; err == nil {
			q.a, q.err = gcraAnswer(res[2*i:2*i+2], q.now, q.perMin)
		}
		q.done <- struct{}{}
	}
}

// gcraAnswer reads one take's part of the script's reply: taken, and the
// TAT after it, which less now (unix µs, in doubles as in the script) is
// the bucket's debt.
func gcraAnswer(res []any, now int64, perMin int) (policy.BucketAnswer, error) {
	taken, ok1 := res[0].(int64)
	s, ok2 := res[1].(string)
	tat, err := strconv.ParseFloat(s, 64)
	if !ok1 || !ok2 || err != nil {
		return policy.BucketAnswer{}, fmt.Errorf("redis rate limit script: unexpected reply %v", res)
	}
	debt := tat - float64(now)
	const period = 60e6 // µs
	a := policy.BucketAnswer{Status: policy.BucketRefused, Tokens: float64(perMin) * (period - debt) / period}
	if taken == 1 {
		a.Status = policy.BucketTaken
	}
	return a, nil
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
