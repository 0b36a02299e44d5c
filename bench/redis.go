package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/redistest"
	"github.com/scopegate/scopegate/internal/testproc"
)

// Redis scenarios (issue 13, SPEC §9).
const (
	// benchUnlimited is the default per-minute limit of the gateways of
	// proxy-apikey-limited and proxy-apikey-redis: every key has a bucket
	// (so every request takes a token) and none is ever refused.
	benchUnlimited = "1000000000"
	// replicaLimitPerMin is the limit of the key redis-2-replicas drives
	// above it: 3,000 per minute, 50 per second (a bucket the warm-up drains).
	replicaLimitPerMin = 3000
)

// redisScenarios need the private redis-server.
var redisScenarios = []string{"proxy-apikey-limited", "proxy-apikey-redis", "redis-2-replicas"}

// startRedis runs a private redis-server (no persistence) on a free loopback
// port, so its CPU per request is the gateways' alone.
func startRedis(ctx context.Context, dir, bin string) (addr string, p *process, err error) {
	addr = freeAddr()
	_, port, _ := net.SplitHostPort(addr)
	p, err = start(dir, "redis", bin, []string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", dir}, nil)
	if err != nil {
		return "", nil, err
	}
	if err := testproc.Wait(ctx, p.Proc, 10*time.Second, 20*time.Millisecond, func() error { return redistest.Ping(addr) }); err != nil {
		p.stop()
		return "", nil, fmt.Errorf("redis-server on %s did not answer (%v; log: %s)", addr, err, p.Log)
	}
	return addr, p, nil
}

// redisEnv is the gateway configuration of the Redis backend on addr with
// its own key prefix. The timeout is 500ms, not the default 50ms: on a
// machine this busy (load generator, gateways and Redis on two cores) a
// take can wait that long for a core, and a timed-out take would be a 503
// (redis-2-replicas) or a silent local fallback (proxy-apikey-redis), not
// a measurement of the shared bucket.
func redisEnv(addr, prefix string) []string {
	return []string{"SCOPEGATE_RATE_LIMIT_BACKEND=redis", "SCOPEGATE_REDIS_URL=redis://" + addr + "/0",
		"SCOPEGATE_REDIS_KEY_PREFIX=" + prefix, "SCOPEGATE_REDIS_TIMEOUT=500ms"}
}

// driveReplicas sends the load of t (one API key) to the gateways at addrs,
// conns/len(addrs) connections each, and counts the answers by status.
func driveReplicas(t target, addrs []string, conns int, warmup, d time.Duration) (loadResult, map[int]int64) {
	var mu sync.Mutex
	byStatus := map[int]int64{}
	var other atomic.Int64
	t.okStatus = 0 // 200 and 429 are both expected
	t.onStatus = func(status int) {
		if status != 200 && status != 429 {
			other.Add(1)
		}
		mu.Lock()
		byStatus[status]++
		mu.Unlock()
	}
	results := make([]loadResult, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ti := t
			ti.addr = a
			results[i] = drive(ti, max(1, conns/len(addrs)), warmup, d)
		}()
	}
	wg.Wait()
	res := results[0]
	for _, r := range results[1:] {
		res.Requests += r.Requests
		res.Errors += r.Errors
		res.latencies = append(res.latencies, r.latencies...)
		res.Elapsed = max(res.Elapsed, r.Elapsed)
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
	}
	res.Errors += other.Load()
	sortDurations(res.latencies)
	return res, byStatus
}

// startRedisGateways starts the private redis-server and the gateways of
// the Redis scenarios in want (none wanted: nothing). Without redis-server
// they are skipped.
func startRedisGateways(ctx context.Context, e *env, dir, bin, baseline string, common, want []string) error {
	needed := false
	for _, s := range redisScenarios {
		needed = needed || slices.Contains(want, s)
	}
	if !needed {
		return nil
	}
	if slices.Contains(want, "proxy-apikey-limited") {
		var err error
		e.gwLimitedAddr, e.gwLimited, err = startGateway(ctx, dir, "scopegate-limited", bin, common,
			"SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN="+benchUnlimited)
		if err != nil {
			return err
		}
	}
	rs := redistest.Binary()
	if rs == "" {
		fmt.Fprintln(os.Stderr, "redis-server not installed: the Redis scenarios are skipped")
		return nil
	}
	addr, p, err := startRedis(ctx, dir, rs)
	if err != nil {
		return err
	}
	e.redis = p
	if slices.Contains(want, "proxy-apikey-redis") {
		e.gwRedisAddr, e.gwRedis, err = startGateway(ctx, dir, "scopegate-redis", bin, common,
			append(redisEnv(addr, "bench1:"), "SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN="+benchUnlimited)...)
		if err != nil {
			return err
		}
		if baseline != "" {
			e.gwRedisBaseAddr, e.gwRedisBase, err = startGateway(ctx, dir, "scopegate-redis-baseline", baseline, common,
				append(redisEnv(addr, "bench1b:"), "SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN="+benchUnlimited)...)
			if err != nil {
				return err
			}
		}
	}
	if slices.Contains(want, "redis-2-replicas") {
		for i := 0; i < 2; i++ {
			// deny: a take Redis did not answer in time is a 503 (counted
			// as an error), never a per-process admission that would blur
			// the accuracy figure.
			a, g, err := startGateway(ctx, dir, fmt.Sprintf("scopegate-replica%d", i+1), bin, common,
				append(redisEnv(addr, "bench2:"), fmt.Sprintf("SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN=%d", replicaLimitPerMin),
					"SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR=deny")...)
			if err != nil {
				return err
			}
			e.replicas, e.replicaAddrs = append(e.replicas, g), append(e.replicaAddrs, a)
		}
	}
	return nil
}

// stopRedisGateways stops what startRedisGateways started, by PID.
func (e *env) stopRedisGateways() {
	for _, p := range append([]*process{e.gwLimited, e.gwRedis, e.gwRedisBase}, e.replicas...) {
		p.stop()
	}
	e.redis.stop()
}

// runReplicas drives one API key (limit replicaLimitPerMin) above its limit
// through both replicas and reports admitted against configured.
func runReplicas(e *env, o options) (scenarioResult, bool, error) {
	tok := apiToken(1)
	t := target{fill: func(req *fasthttp.Request, w, i int) {
		req.SetRequestURI("/api/orders/1")
		req.Header.Set("X-API-Key", tok)
	}}
	var cpu0, redis0, calls0 int64
	for _, g := range e.replicas {
		c, _ := cpuTime(g.Pid())
		cpu0 += c
		calls0 += redisCalls(g)
	}
	redis0, _ = cpuTime(e.redis.Pid())
	res, byStatus := driveReplicas(t, e.replicaAddrs, o.conns, o.warmup, o.duration)
	if res.FirstError != "" {
		fmt.Fprintf(os.Stderr, "redis-2-replicas: first error: %s\n", res.FirstError)
	}
	secs := res.Elapsed.Seconds()
	n := float64(replicaLimitPerMin)
	x := &replicaResult{
		Replicas: len(e.replicas), ConfiguredPerSec: n / 60, Admitted: byStatus[200], Refused: byStatus[429], Seconds: secs,
		AdmittedPerSec: float64(byStatus[200]) / secs, Bound: n + n/60*secs + float64(len(e.replicas)),
	}
	r := scenarioResult{Name: "redis-2-replicas", Requests: res.Requests, RPS: res.RPS(), Errors: res.Errors,
		P50us: us(res.Percentile(50)), P99us: us(res.Percentile(99)), P999us: us(res.Percentile(99.9)), Replicas: x}
	served := res.RPS() * (o.warmup + o.duration).Seconds()
	if served > 0 {
		var cpu1, calls1 int64
		for _, g := range e.replicas {
			c, _ := cpuTime(g.Pid())
			cpu1 += c
			calls1 += redisCalls(g)
		}
		if calls1 > calls0 {
			r.RedisTakesPerCall = served / float64(calls1-calls0)
		}
		redis1, _ := cpuTime(e.redis.Pid())
		r.GatewayCPUus = float64(cpu1-cpu0) / served
		r.RedisCPUus = float64(redis1-redis0) / served
	}
	return r, true, nil
}

// redisCalls reads scopegate_redis_calls_total from gw's /metrics (0 when
// it cannot).
func redisCalls(gw *process) int64 {
	if gw == nil || gw.admin == "" {
		return 0
	}
	status, body, err := fasthttp.GetTimeout(nil, "http://"+gw.admin+"/metrics", 5*time.Second)
	if err != nil || status != 200 {
		return 0
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "scopegate_redis_calls_total "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
