package store

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scopegate/scopegate/internal/redistest"
	"github.com/scopegate/scopegate/policy"
)

var rlT0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func newEngine(t testing.TB) *policy.Engine {
	t.Helper()
	e, err := policy.NewEngine(policy.EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newRedisBuckets builds shared buckets on addr with a prefix of the test's
// own; cfg's zero fields take the test defaults.
func newRedisBuckets(t testing.TB, addr string, cfg RedisBucketsConfig) *RedisBuckets {
	t.Helper()
	cfg.URL = "redis://" + addr + "/0"
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = redistest.Prefix(t)
	}
	if cfg.Local == nil {
		cfg.Local = newEngine(t)
	}
	if cfg.Timeout == 0 {
		// Generous for a machine shared by parallel test runs.
		cfg.Timeout = 2 * time.Second
	}
	r, err := NewRedisBuckets(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// headers is what a bucket answer becomes: the decision's reason and its
// RateLimit numbers.
func headers(limit int, a policy.BucketAnswer) (policy.Reason, policy.RateLimitState) {
	d := policy.ApplyBucket(policy.Decision{Verdict: policy.Allow}, limit, a)
	return d.Reason, d.RateLimit
}

// TestRedisBucketsMatchLocal drives the shared bucket and the per-process
// one through the same takes (SPEC §9: the semantics of §3, the same
// headers): bursts, refusals, refill, a changed limit, odd and large limits.
func TestRedisBucketsMatchLocal(t *testing.T) {
	addr := redistest.Shared(t)
	local := newEngine(t)
	r := newRedisBuckets(t, addr, RedisBucketsConfig{})
	steps := []struct {
		id    string
		after time.Duration
		limit int
		want  policy.Reason
	}{
		{"a", 0, 2, policy.ReasonNone},
		{"a", 0, 2, policy.ReasonNone},
		{"a", 0, 2, policy.ReasonRateLimited},
		{"a", 10 * time.Second, 2, policy.ReasonRateLimited},
		{"a", 20 * time.Second, 2, policy.ReasonNone},
		{"a", 90 * time.Second, 2, policy.ReasonNone},
		{"a", 0, 5, policy.ReasonNone}, // the limit changes: tokens left are kept
		{"a", 0, 5, policy.ReasonRateLimited},
		{"a", 0, 6, policy.ReasonRateLimited}, // raising it refills nothing
		{"a", 12 * time.Second, 5, policy.ReasonNone},
		{"a", 0, 100, policy.ReasonRateLimited},
		{"a", 600 * time.Millisecond, 100, policy.ReasonNone},
		{"a", time.Hour, 1, policy.ReasonNone}, // lowering it: at most the new capacity
		{"a", 0, 1, policy.ReasonRateLimited},
		{"b", 0, 7, policy.ReasonNone},
		{"b", 0, 7, policy.ReasonNone},
		{"b", 0, 7, policy.ReasonNone},
		{"b", 0, 7, policy.ReasonNone},
		{"b", 0, 7, policy.ReasonNone},
		{"b", 0, 7, policy.ReasonNone},
		{"b", 0, 7, policy.ReasonNone},
		{"b", 0, 7, policy.ReasonRateLimited},
		{"b", 8571 * time.Millisecond, 7, policy.ReasonRateLimited},
		{"b", 1 * time.Millisecond, 7, policy.ReasonNone},
		{"c", 0, 1_000_000, policy.ReasonNone},
		{"c", 30 * time.Second, 1_000_000, policy.ReasonNone},
	}
	// 60s/N below a double's resolution at unix µs (0.25 µs): the debt is
	// kept relative, so every take still counts. These go in one script
	// call: the key's expiry is in real time (a 60 µs debt lives 1 ms), and
	// on a loaded machine more than that may pass between two calls while
	// the test's clock stands still.
	batch := []batchTake{
		{"d", 0, 1_000_000_000}, {"d", 0, 1_000_000_000}, {"d", 0, 1_000_000_000},
		{"d", time.Microsecond, 1_000_000_000},
	}
	now := rlT0
	// check compares got, Redis's answer to step i at now, with the local
	// bucket's answer to the same take.
	check := func(i int, id string, limit int, now time.Time, got policy.BucketAnswer, want policy.Reason) {
		gotR, gotRL := headers(limit, got)
		wantR, wantRL := headers(limit, local.TakeLocal(id, limit, now))
		if gotR != wantR || gotRL != wantRL {
			t.Errorf("step %d (%s, %d/min): redis %v %+v, local %v %+v", i, id, limit, gotR, gotRL, wantR, wantRL)
		}
		if gotR != want {
			t.Errorf("step %d (%s, %d/min): %v, want %v", i, id, limit, gotR, want)
		}
	}
	for i, s := range steps {
		now = now.Add(s.after)
		check(i, s.id, s.limit, now, r.Take(s.id, s.limit, now), s.want)
	}
	answers := sendBatch(t, r, now, batch)
	for i, s := range batch {
		now = now.Add(s.after)
		check(len(steps)+i, s.id, s.limit, now, answers[i], policy.ReasonNone)
	}
	if n := r.m.errors.Get(); n != 0 {
		t.Errorf("%d redis errors", n)
	}
}

// batchTake is one take of a script call sendBatch makes: client id's
// bucket of limit per minute, after the previous take (or the start).
type batchTake struct {
	id    string
	after time.Duration
	limit int
}

// sendBatch sends takes, from start, to r in one script call and returns
// their answers, failing t on an error.
func sendBatch(t *testing.T, r *RedisBuckets, start time.Time, takes []batchTake) []policy.BucketAnswer {
	t.Helper()
	qs := make([]*takeReq, len(takes))
	now := start
	for i, tk := range takes {
		now = now.Add(tk.after)
		qs[i] = &takeReq{key: r.cfg.KeyPrefix + "rl:" + tk.id, perMin: tk.limit, now: now.UnixMicro(),
			deadline: time.Now().Add(time.Minute), done: make(chan struct{}, 1)}
	}
	r.send(qs)
	answers := make([]policy.BucketAnswer, len(takes))
	for i, q := range qs {
		<-q.done
		if q.err != nil {
			t.Fatalf("take %d of the batch: %v", i, q.err)
		}
		answers[i] = q.a
	}
	return answers
}

// TestRedisBucketsKey checks the key's name and that it expires once the
// bucket would be full again; a refusal writes nothing.
func TestRedisBucketsKey(t *testing.T) {
	addr := redistest.Shared(t)
	prefix := redistest.Prefix(t)
	r := newRedisBuckets(t, addr, RedisBucketsConfig{KeyPrefix: prefix})
	for i := 0; i < 3; i++ {
		r.Take("42", 60, rlT0)
	}
	key := prefix + "rl:42"
	pttl := func() int {
		s, err := redistest.Command(addr, "PTTL", key)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(s, ":"))
		return n
	}
	// Three of 60 taken at 1/s: full again in 3 s.
	if ms := pttl(); ms <= 2000 || ms > 3000 {
		t.Errorf("PTTL %s = %d ms, want (2000, 3000]", key, ms)
	}
	v, err := redistest.Command(addr, "GET", key)
	// 1, then the time written, the debt then and N as little-endian
	// doubles: three tokens of one a second taken at rlT0.
	at := float64(rlT0.UnixMicro())
	if err != nil || len(v) != 25 || v[0] != 1 || math.Float64frombits(le64(v[1:])) != at ||
		math.Float64frombits(le64(v[9:])) != 3e6 || math.Float64frombits(le64(v[17:])) != 60 {
		t.Errorf("GET %s = %q, %v; want 1, %v, 3e6, 60 in binary", key, v, err, at)
	}
	r.Take("43", 1, rlT0)
	before, _ := redistest.Command(addr, "GET", prefix+"rl:43")
	if a := r.Take("43", 1, rlT0.Add(time.Second)); a.Status != policy.BucketRefused {
		t.Fatalf("second take of a 1/min bucket: %+v", a)
	}
	if after, _ := redistest.Command(addr, "GET", prefix+"rl:43"); after != before {
		t.Errorf("a refusal changed the key: %q → %q", before, after)
	}
}

// TestRedisBucketsReadsTextValue: a bucket written by an earlier version
// ("<tat> <N>" in text) is read, not reset, so a rolling upgrade keeps
// the new replicas' takes within the limit.
func TestRedisBucketsReadsTextValue(t *testing.T) {
	addr := redistest.Shared(t)
	prefix := redistest.Prefix(t)
	r := newRedisBuckets(t, addr, RedisBucketsConfig{KeyPrefix: prefix})
	now := rlT0.UnixMicro()
	tests := []struct {
		id, value string
		limit     int
		want      policy.BucketStatus
		tokens    float64 // after the take
	}{
		// 59 of 60 taken a moment ago: one left.
		{"t1", fmt.Sprintf("%d 60", now+59_000_000), 60, policy.BucketTaken, 0},
		// all 60 taken: refused.
		{"t2", fmt.Sprintf("%d 60", now+60_000_000), 60, policy.BucketRefused, 0},
		// a fractional TAT as %.17g wrote it.
		{"t3", fmt.Sprintf("%.17g 7", float64(now)+6*60e6/7+0.5), 7, policy.BucketTaken, 0},
	}
	for _, tt := range tests {
		key := prefix + "rl:" + tt.id
		if _, err := redistest.Command(addr, "SET", key, tt.value, "PX", "60000"); err != nil {
			t.Fatal(err)
		}
		a := r.Take(tt.id, tt.limit, rlT0)
		if a.Status != tt.want || math.Abs(a.Tokens-tt.tokens) > 1e-6 {
			t.Errorf("%s: take on %q = %+v, want %v with %v tokens", tt.id, tt.value, a, tt.want, tt.tokens)
		}
	}
}

// TestRedisBucketsReplicasExact: three clients of one Redis (three
// replicas) taking concurrently at one instant admit exactly the capacity.
func TestRedisBucketsReplicasExact(t *testing.T) {
	addr := redistest.Shared(t)
	prefix := redistest.Prefix(t)
	var replicas []*RedisBuckets
	for i := 0; i < 3; i++ {
		// Deny on errors, so a slow take cannot be admitted by a
		// per-process fallback; errors are reported.
		replicas = append(replicas, newRedisBuckets(t, addr, RedisBucketsConfig{KeyPrefix: prefix, OnError: RedisErrorDeny}))
	}
	const limit, callers = 50, 30
	var mu sync.Mutex
	taken := 0
	var wg sync.WaitGroup
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if replicas[(g+i)%3].Take("7", limit, rlT0).Status == policy.BucketTaken {
					mu.Lock()
					taken++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if taken != limit {
		t.Errorf("%d of %d takes admitted, want exactly %d", taken, callers*10, limit)
	}
	calls := uint64(0)
	for i, r := range replicas {
		if n := r.m.errors.Get(); n != 0 {
			t.Errorf("replica %d: %d errors", i, n)
		}
		calls += r.m.calls.Get()
	}
	t.Logf("%d takes in %d script calls (batched)", callers*10, calls)
}

// TestRedisBucketsClosed: a take after Close falls back at once.
func TestRedisBucketsClosed(t *testing.T) {
	addr := redistest.Shared(t)
	r := newRedisBuckets(t, addr, RedisBucketsConfig{OnError: RedisErrorDeny})
	r.Close()
	if a := r.Take("1", 3, rlT0); a.Status != policy.BucketUnavailable {
		t.Errorf("take after Close: %+v", a)
	}
}

// TestRedisBucketsErrorModes cuts Redis through a relay: each mode answers
// as SPEC §9 says, the breaker keeps Redis to one attempt, and the
// metrics count calls, errors and fallbacks.
func TestRedisBucketsErrorModes(t *testing.T) {
	addr := redistest.Shared(t)
	for _, tc := range []struct {
		mode RedisErrorMode
		cut  redistest.RelayMode
		want policy.BucketStatus
	}{
		{RedisErrorLocal, redistest.Drop, policy.BucketTaken},
		{RedisErrorAllow, redistest.Drop, policy.BucketUnlimited},
		{RedisErrorDeny, redistest.Drop, policy.BucketUnavailable},
		{RedisErrorDeny, redistest.Hang, policy.BucketUnavailable},
	} {
		t.Run(fmt.Sprintf("%v-%d", tc.mode, tc.cut), func(t *testing.T) {
			relay := redistest.NewRelay(t, addr)
			set := metrics.NewSet()
			timeout := 2 * time.Second
			if tc.cut == redistest.Hang {
				timeout = 200 * time.Millisecond
			}
			r := newRedisBuckets(t, relay.Addr, RedisBucketsConfig{OnError: tc.mode, RetryInterval: time.Hour, Metrics: set, Timeout: timeout})
			// A shared bucket of 3 with 2 taken: the fallbacks below are
			// told apart from Redis's answers.
			r.Take("1", 3, rlT0)
			if a := r.Take("1", 3, rlT0); a.Status != policy.BucketTaken || a.Tokens > 1.01 {
				t.Fatalf("through the relay: %+v", a)
			}
			relay.Set(tc.cut)
			for i := 0; i < 20; i++ {
				a := r.Take("1", 3, rlT0)
				want := tc.want
				if tc.mode == RedisErrorLocal && i >= 3 {
					want = policy.BucketRefused // the per-process bucket of 3 is empty
				}
				if a.Status != want {
					t.Fatalf("take %d with Redis cut: %+v, want status %d", i, a, want)
				}
				if tc.mode == RedisErrorLocal && i == 0 && a.Tokens < 1.99 {
					t.Errorf("local fallback: %+v, want the per-process bucket (a fresh one: 2 tokens left of 3)", a)
				}
			}
			// One failed attempt; the other 19 takes never reached Redis.
			if c, e, f := r.m.calls.Get(), r.m.errors.Get(), r.m.fallbacks.Get(); c != 3 || e != 1 || f != 20 {
				t.Errorf("calls %d errors %d fallbacks %d, want 3 1 20", c, e, f)
			}
			var sb strings.Builder
			set.WritePrometheus(&sb)
			for _, want := range []string{`scopegate_redis_breaker_open 1`, `scopegate_rate_limit_fallbacks_total{mode="` + tc.mode.String() + `"} 20`, `scopegate_redis_duration_seconds_bucket`} {
				if !strings.Contains(sb.String(), want) {
					t.Errorf("metrics lack %q:\n%s", want, sb.String())
				}
			}
		})
	}
}

// waitRedis takes from r until Redis itself answers (a call that is not an
// error), failing after 10 s.
func waitRedis(t *testing.T, r *RedisBuckets, id string, limit int, now time.Time) policy.BucketAnswer {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		ok := r.m.calls.Get() - r.m.errors.Get()
		a := r.Take(id, limit, now)
		if r.m.calls.Get()-r.m.errors.Get() > ok {
			return a
		}
		time.Sleep(5 * time.Millisecond) // the breaker's retry interval is 10 ms
	}
	t.Fatal("Redis never answered again")
	return policy.BucketAnswer{}
}

// TestRedisBucketsComesBack: after a cut the breaker lets one take through
// per interval and the shared bucket is used again as soon as Redis answers.
func TestRedisBucketsComesBack(t *testing.T) {
	addr := redistest.Shared(t)
	relay := redistest.NewRelay(t, addr)
	r := newRedisBuckets(t, relay.Addr, RedisBucketsConfig{OnError: RedisErrorDeny, RetryInterval: 10 * time.Millisecond})
	r.Take("1", 3, rlT0)
	relay.Set(redistest.Drop)
	if a := r.Take("1", 3, rlT0); a.Status != policy.BucketUnavailable {
		t.Fatalf("cut: %+v", a)
	}
	relay.Set(redistest.Pass)
	// The shared state survived: one of three was taken before the cut.
	if a := waitRedis(t, r, "1", 3, rlT0); a.Status != policy.BucketTaken || a.Tokens > 1.01 {
		t.Errorf("after the cut: %+v, want the shared bucket with 1 token left", a)
	}
	if r.br.isOpen() {
		t.Error("breaker still open")
	}
}

// TestRedisBucketsPrivateServer flushes, drops the scripts of and restarts a
// private redis-server: decisions continue and the shared limit comes back.
func TestRedisBucketsPrivateServer(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedisBuckets(t, srv.Addr, RedisBucketsConfig{OnError: RedisErrorDeny, RetryInterval: 10 * time.Millisecond})
	exhaust := func(id string) {
		t.Helper()
		for i := 0; i < 3; i++ {
			if a := r.Take(id, 3, rlT0); a.Status != policy.BucketTaken {
				t.Fatalf("take %d: %+v", i, a)
			}
		}
		if a := r.Take(id, 3, rlT0); a.Status != policy.BucketRefused {
			t.Fatalf("fourth take: %+v", a)
		}
	}
	evals := func() int {
		info, err := redistest.Command(srv.Addr, "INFO", "commandstats")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(l, "cmdstat_eval:calls="); ok {
				n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
				return n
			}
		}
		return 0
	}

	exhaust("1")
	if _, err := redistest.Command(srv.Addr, "FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	exhaust("1") // the keys are gone: a full bucket again, no error

	e0 := evals()
	if _, err := redistest.Command(srv.Addr, "SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	exhaust("2") // NOSCRIPT: the script is sent again (EVAL), no error
	if evals() != e0+1 {
		t.Errorf("EVAL calls %d → %d, want one after SCRIPT FLUSH", e0, evals())
	}
	if n := r.m.errors.Get(); n != 0 {
		t.Errorf("%d errors before the restart", n)
	}

	srv.Restart()
	if a := waitRedis(t, r, "3", 3, rlT0); a.Status != policy.BucketTaken {
		t.Errorf("after the restart: %+v", a)
	}
	exhaust("4")
}

// TestBreaker checks the breaker's schedule with explicit times.
func TestBreaker(t *testing.T) {
	var b breaker
	if !b.try(rlT0) {
		t.Fatal("closed breaker refused")
	}
	if !b.fail(rlT0, time.Second) || b.fail(rlT0, time.Second) {
		t.Error("fail reports the first failure only")
	}
	if b.try(rlT0.Add(999 * time.Millisecond)) {
		t.Error("open breaker let a take through before the interval")
	}
	if !b.try(rlT0.Add(time.Second)) {
		t.Error("no probe after the interval")
	}
	if b.try(rlT0.Add(time.Second)) {
		t.Error("a second probe while the first is out")
	}
	b.fail(rlT0.Add(time.Second), time.Second)
	if b.try(rlT0.Add(1500 * time.Millisecond)) {
		t.Error("a failed probe did not reopen the breaker")
	}
	if !b.try(rlT0.Add(2*time.Second)) || !b.succeed() || b.isOpen() || !b.try(rlT0.Add(2*time.Second)) {
		t.Error("a successful probe did not close the breaker")
	}
}

func TestParseRedisErrorMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want RedisErrorMode
		ok   bool
	}{{"local", RedisErrorLocal, true}, {"allow", RedisErrorAllow, true}, {"deny", RedisErrorDeny, true}, {"", 0, false}, {"Deny", 0, false}, {"open", 0, false}} {
		got, err := ParseRedisErrorMode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRedisErrorMode(%q) = %v, %v", tc.in, got, err)
		}
	}
	for _, u := range []string{"", "http://x:6379", "redis://x:notaport", "redis://h/notadb"} {
		if _, err := ParseRedisURL(u); err == nil {
			t.Errorf("ParseRedisURL(%q) accepted", u)
		}
	}
	if _, err := ParseRedisURL("redis://user:secret@127.0.0.1:6379/2"); err != nil {
		t.Error(err)
	}
}

// TestGCRAScriptBatchEqualsSequential: takes sent in one script call give
// the answers and leave the values the same takes give one call each: a
// key repeated in the batch (its limit changing, its time going back), a
// key holding an earlier version's text value under another limit, a
// missing key.
func TestGCRAScriptBatchEqualsSequential(t *testing.T) {
	addr := redistest.Shared(t)
	pa, pb := redistest.Prefix(t)+"batch:", redistest.Prefix(t)+"seq:"
	batched := newRedisBuckets(t, addr, RedisBucketsConfig{KeyPrefix: pa})
	seq := newRedisBuckets(t, addr, RedisBucketsConfig{KeyPrefix: pb})
	legacy := fmt.Sprintf("%d 10", rlT0.Add(45*time.Second).UnixMicro()) // 2.5 of 10 left
	for _, p := range []string{pa, pb} {
		if _, err := redistest.Command(addr, "SET", p+"rl:B", legacy, "PX", "60000"); err != nil {
			t.Fatal(err)
		}
	}
	takes := []batchTake{
		{"A", 0, 5}, {"B", 0, 7}, {"A", 0, 5}, {"C", 0, 3}, {"A", time.Second, 6},
		{"B", 0, 7}, {"A", -2 * time.Second, 5}, {"A", 0, 5}, {"A", 0, 5}, {"A", 0, 5}, {"C", 0, 3},
		{"B", 0, 7}, {"B", 0, 7},
	}
	answers := sendBatch(t, batched, rlT0, takes)
	now := rlT0
	for i, tk := range takes {
		now = now.Add(tk.after)
		got, want := answers[i], seq.Take(tk.id, tk.limit, now)
		if got != want {
			t.Errorf("take %d (%s at %v, %d/min): batched %+v, one per call %+v", i, tk.id, now.Sub(rlT0), tk.limit, got, want)
		}
	}
	for _, id := range []string{"A", "B", "C"} {
		a, errA := redistest.Command(addr, "GET", pa+"rl:"+id)
		b, errB := redistest.Command(addr, "GET", pb+"rl:"+id)
		if errA != nil || errB != nil || a != b {
			t.Errorf("value of %s: batched %q (%v), one per call %q (%v)", id, a, errA, b, errB)
		}
	}
	if calls := batched.m.calls.Get(); calls != 1 {
		t.Errorf("the batch took %d script calls, want 1", calls)
	}
}

// TestRedisBucketsCloseWhileTaking: takes queued or in flight when Close
// runs are all answered (taken, or per OnError), and closing is not an
// outage: the breaker stays closed.
func TestRedisBucketsCloseWhileTaking(t *testing.T) {
	addr := redistest.Shared(t)
	for round := 0; round < 20; round++ {
		r := newRedisBuckets(t, addr, RedisBucketsConfig{OnError: RedisErrorDeny})
		var answered sync.WaitGroup
		var done atomic.Int64
		var mu sync.Mutex
		bad := map[policy.BucketStatus]int{}
		for g := 0; g < 64; g++ {
			answered.Add(1)
			go func() {
				defer answered.Done()
				for i := 0; i < 50; i++ {
					a := r.Take(fmt.Sprint(g%8), 1<<30, time.Now())
					if a.Status != policy.BucketTaken && a.Status != policy.BucketUnavailable {
						mu.Lock()
						bad[a.Status]++
						mu.Unlock()
					}
					done.Add(1)
				}
			}()
		}
		// Close at a point that moves from round to round.
		for start := time.Now(); done.Load() <= int64(round*100); time.Sleep(50 * time.Microsecond) {
			if time.Since(start) > time.Minute {
				t.Fatalf("round %d: only %d takes answered in a minute", round, done.Load())
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		finished := make(chan struct{})
		go func() { answered.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(time.Minute):
			t.Fatalf("round %d: a take was never answered after Close (%d of 3200 answered)", round, done.Load())
		}
		if len(bad) > 0 {
			t.Errorf("round %d: unexpected answers %v", round, bad)
		}
		if r.br.isOpen() {
			t.Errorf("round %d: Close opened the breaker", round)
		}
	}
}
