package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
)

// allScenarios is the order of one round (issue 6).
var allScenarios = []string{
	"direct", "proxy-public", "proxy-apikey", "proxy-apikey-limited", "proxy-apikey-redis", "redis-2-replicas", "proxy-jwt", "forward-auth",
	"fasthttp-proxy", "fasthttp-proxy-safe", "fasthttp-auth", "nginx-proxy", "nginx-auth-request", "cold-users", "bad-keys",
}

// jwtSecret signs the benchmark's user tokens (HS256, configured on the
// gateway with SCOPEGATE_JWT_HS256_SECRET).
const jwtSecret = "bench-hs256-secret-not-for-production-use-0123456789"

// benchRoutes is the routes file the gateway runs with.
const benchRoutes = `default: deny
routes:
  - path: /public/**
    auth: none
  - path: /api/companies/{company}/sites/{site}/**
    auth: [jwt]
    module: inventory
    scope: site:{site}
  - path: /api/**
    auth: [api_key]
`

// env is everything the scenarios need to address.
type env struct {
	dir                  string
	upstream             string
	upstreamProc         *process
	gateway, gatewayCold *process
	gwAddr, gwColdAddr   string
	gatewayBase          *process // -baseline
	gwBaseAddr           string
	bareProxy            *process
	bareProxyAddr        string
	safeProxy            *process
	safeProxyAddr        string
	bareAuth             *process
	bareAuthAddr         string
	nginx                *process
	nginxProxy, nginxAR  string
	dbURL, dbName        string
	redis                *process // the private redis-server of the Redis scenarios
	gwLimited, gwRedis   *process // proxy-apikey-limited, proxy-apikey-redis
	gwLimitedAddr        string
	gwRedisAddr          string
	gwRedisBase          *process // proxy-apikey-redis@baseline
	gwRedisBaseAddr      string
	replicas             []*process // redis-2-replicas
	replicaAddrs         []string
	userToken            string
	coldTokens           []string
}

func sign(sub string) string {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(2 * time.Hour).Unix(), "iat": time.Now().Unix(),
	})
	s, err := t.SignedString([]byte(jwtSecret))
	if err != nil {
		panic(err)
	}
	return s
}

func runBench(ctx context.Context, o options) (*report, error) {
	dir, err := os.MkdirTemp("", "scopegate-bench-")
	if err != nil {
		return nil, err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(dir, "scopegate")
		fmt.Fprintln(os.Stderr, "building ./cmd/scopegate ...")
		b := exec.Command("go", "build", "-o", bin, "./cmd/scopegate")
		b.Stdout, b.Stderr = os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return nil, fmt.Errorf("building scopegate (run from the repository root): %w", err)
		}
	}
	e := &env{dir: dir}
	e.upstream, e.upstreamProc, err = startUpstream(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer e.upstreamProc.stop()

	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	routes := filepath.Join(dir, "routes.yaml")
	if err := os.WriteFile(routes, []byte(benchRoutes), 0o644); err != nil {
		return nil, err
	}
	common := append(base,
		"SCOPEGATE_UPSTREAM_URL=http://"+e.upstream,
		"SCOPEGATE_ROUTES_FILE="+routes,
		"SCOPEGATE_JWT_HS256_SECRET="+jwtSecret,
		"SCOPEGATE_JWT_ALGORITHMS=HS256",
		"SCOPEGATE_LOG_LEVEL=error",
	)
	switch o.store {
	case "pg":
		e.dbName = o.dbName
		if e.dbName == "" {
			e.dbName = "scopegate_bench"
		}
		e.dbURL, err = createBenchDB(ctx, o.adminURL, e.dbName)
		if err != nil {
			return nil, err
		}
		if !o.keep {
			// Deferred first, so it runs after every gateway has stopped.
			defer func() {
				if err := dropBenchDB(context.Background(), o.adminURL, e.dbName); err != nil {
					fmt.Fprintf(os.Stderr, "dropping the benchmark database %s: %v\n", e.dbName, err)
				}
			}()
		}
		m := exec.Command(bin, "migrate")
		m.Env = append(base, "SCOPEGATE_DATABASE_URL="+e.dbURL)
		if out, err := m.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("scopegate migrate: %w\n%s", err, out)
		}
		if err := seed(ctx, e.dbURL); err != nil {
			return nil, err
		}
		common = append(common, "SCOPEGATE_DATABASE_URL="+e.dbURL)
	case "file":
		path := filepath.Join(dir, "store.yaml")
		if err := writeFileStore(path); err != nil {
			return nil, err
		}
		common = append(common, "SCOPEGATE_STORE_FILE="+path)
	default:
		return nil, fmt.Errorf("-store must be pg or file")
	}

	e.gwAddr, e.gateway, err = startGateway(ctx, dir, "scopegate", bin, common)
	if err != nil {
		return nil, err
	}
	defer e.gateway.stop()
	want := splitComma(o.scenarios)
	if o.baseline != "" {
		// The same gateway configuration from another binary, measured right
		// after each gateway scenario: before/after figures from one round.
		e.gwBaseAddr, e.gatewayBase, err = startGateway(ctx, dir, "scopegate-baseline", o.baseline, common)
		if err != nil {
			return nil, err
		}
		defer e.gatewayBase.stop()
		want = withBaseline(want)
	}
	if err := startRedisGateways(ctx, e, dir, bin, o.baseline, common, want); err != nil {
		return nil, err
	}
	defer e.stopRedisGateways()
	if slices.Contains(want, "cold-users") && o.store == "pg" {
		// A second gateway whose user cache expires at once: every request
		// is a database lookup.
		e.gwColdAddr, e.gatewayCold, err = startGateway(ctx, dir, "scopegate-cold", bin, common,
			"SCOPEGATE_CACHE_TTL=1ms", "SCOPEGATE_NEGATIVE_CACHE_TTL=1ms")
		if err != nil {
			return nil, err
		}
		defer e.gatewayCold.stop()
		for i := 1; i <= nUsers; i++ {
			e.coldTokens = append(e.coldTokens, sign(userSub(i)))
		}
	}
	if slices.Contains(want, "fasthttp-proxy") {
		e.bareProxyAddr, e.bareProxy, err = startProxyChild(ctx, dir, "bare-proxy", bareProxyEnv, e.upstream)
		if err != nil {
			return nil, err
		}
		defer e.bareProxy.stop()
	}
	if slices.Contains(want, "fasthttp-proxy-safe") {
		e.safeProxyAddr, e.safeProxy, err = startProxyChild(ctx, dir, "safe-proxy", safeProxyEnv, e.upstream)
		if err != nil {
			return nil, err
		}
		defer e.safeProxy.stop()
	}
	if slices.Contains(want, "fasthttp-auth") {
		e.bareAuthAddr, e.bareAuth, err = startBareAuth(ctx, dir)
		if err != nil {
			return nil, err
		}
		defer e.bareAuth.stop()
	}
	if ng := findNginx(); ng != "" && (slices.Contains(want, "nginx-proxy") || slices.Contains(want, "nginx-auth-request")) {
		e.nginxProxy, e.nginxAR = freeAddr(), freeAddr()
		for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			_ = os.MkdirAll(filepath.Join(dir, d), 0o755)
		}
		conf := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(conf, []byte(nginxConf(dir, e.nginxProxy, e.nginxAR, e.upstream, e.gwAddr)), 0o644); err != nil {
			return nil, err
		}
		e.nginx, err = start(dir, "nginx", ng, []string{"-p", dir, "-c", conf, "-g", "daemon off;"}, base)
		if err != nil {
			return nil, err
		}
		defer e.nginx.stop()
		if err := waitHTTP(ctx, "http://"+e.nginxProxy+"/", 10*time.Second, e.nginx); err != nil {
			return nil, err
		}
	}
	e.userToken = sign(userSub(1))

	rep := &report{Machine: describeMachine(), Store: o.store, Conns: o.conns, Duration: o.duration.String()}
	for round := 0; round < o.rounds; round++ {
		order := append([]string(nil), want...)
		if round%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		var results []scenarioResult
		for _, name := range order {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r, ok, err := runScenario(ctx, e, name, o)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			if !ok {
				fmt.Fprintf(os.Stderr, "round %d: %s skipped (not available)\n", round+1, name)
				continue
			}
			fmt.Fprintf(os.Stderr, "round %d: %-20s %9.0f req/s  p99 %v  errors %d\n", round+1, name, r.RPS, time.Duration(r.P99us*1000), r.Errors)
			results = append(results, r)
		}
		rep.Rounds = append(rep.Rounds, round1(round+1, results))
	}
	rep.summarize()
	return rep, nil
}

// startGateway runs bin serve with env plus its own listen and admin
// addresses (and extra), and waits until /readyz answers.
func startGateway(ctx context.Context, dir, name, bin string, env []string, extra ...string) (addr string, p *process, err error) {
	addr, admin := freeAddr(), freeAddr()
	full := append(append(append([]string(nil), env...), extra...),
		"SCOPEGATE_LISTEN_ADDR="+addr, "SCOPEGATE_ADMIN_ADDR="+admin)
	p, err = start(dir, name, bin, []string{"serve"}, full)
	if err != nil {
		return "", nil, err
	}
	if err := waitHTTP(ctx, "http://"+admin+"/readyz", 60*time.Second, p); err != nil {
		p.stop()
		return "", nil, err
	}
	p.admin = admin
	return addr, p, nil
}

// baselineSuffix marks a scenario run against the -baseline gateway.
const baselineSuffix = "@baseline"

// withBaseline inserts <scenario>@baseline after every scenario served by the
// gateway itself.
func withBaseline(want []string) []string {
	var out []string
	for _, s := range want {
		out = append(out, s)
		switch s {
		case "proxy-public", "proxy-apikey", "proxy-jwt", "forward-auth", "bad-keys", "proxy-apikey-redis":
			out = append(out, s+baselineSuffix)
		}
	}
	return out
}

// runScenario measures one scenario; ok is false when it cannot run here.
// A name ending in @baseline runs the scenario against the -baseline gateway.
func runScenario(ctx context.Context, e *env, name string, o options) (scenarioResult, bool, error) {
	if base, ok := strings.CutSuffix(name, baselineSuffix); ok {
		eb := *e
		eb.gwAddr, eb.gateway = e.gwBaseAddr, e.gatewayBase
		eb.gwRedisAddr, eb.gwRedis = e.gwRedisBaseAddr, e.gwRedisBase
		r, ok, err := runScenario(ctx, &eb, base, o)
		r.Name = name
		return r, ok, err
	}
	var t target
	var gw *process
	t.okStatus = 200
	switch name {
	case "direct":
		// The CPU column of direct is the upstream's own: what a
		// hello-world answer costs on this machine.
		t.addr, gw = e.upstream, e.upstreamProc
		t.fill = func(req *fasthttp.Request, w, i int) { req.SetRequestURI("/api/orders/1") }
	case "proxy-public":
		t.addr, gw = e.gwAddr, e.gateway
		t.fill = func(req *fasthttp.Request, w, i int) { req.SetRequestURI("/public/hello") }
	case "proxy-apikey":
		t.addr, gw = e.gwAddr, e.gateway
		t.fill = apiFill("/api/orders/1")
	case "proxy-jwt":
		t.addr, gw = e.gwAddr, e.gateway
		auth := "Bearer " + e.userToken
		t.fill = func(req *fasthttp.Request, w, i int) {
			req.SetRequestURI("/api/companies/c050/sites/c050-s03/stock")
			req.Header.Set("Authorization", auth)
		}
	case "forward-auth":
		t.addr, gw = e.gwAddr, e.gateway
		t.fill = forwardAuthFill()
	case "fasthttp-proxy":
		// The reference floor of the proxy scenarios: a bare fasthttp
		// reverse proxy (serveBareProxy); its CPU column is its own.
		t.addr, gw = e.bareProxyAddr, e.bareProxy
		t.fill = func(req *fasthttp.Request, w, i int) { req.SetRequestURI("/public/hello") }
	case "fasthttp-proxy-safe":
		// The same with scopegate's listener and upstream-client settings
		// (serveSafeProxy): timeouts and streaming, still no checks.
		t.addr, gw = e.safeProxyAddr, e.safeProxy
		t.fill = func(req *fasthttp.Request, w, i int) { req.SetRequestURI("/public/hello") }
	case "fasthttp-auth":
		// The reference of forward-auth: scopegate's allow answer from a
		// server with its listener settings and no decision
		// (serveBareAuth); the same requests as forward-auth.
		t.addr, gw = e.bareAuthAddr, e.bareAuth
		t.fill = forwardAuthFill()
	case "nginx-proxy":
		if e.nginx == nil {
			return scenarioResult{}, false, nil
		}
		t.addr = e.nginxProxy
		t.fill = func(req *fasthttp.Request, w, i int) { req.SetRequestURI("/api/orders/1") }
	case "nginx-auth-request":
		if e.nginx == nil {
			return scenarioResult{}, false, nil
		}
		t.addr, gw = e.nginxAR, e.gateway
		t.fill = apiFill("/api/orders/1")
	case "cold-users":
		if e.gatewayCold == nil {
			return scenarioResult{}, false, nil
		}
		t.addr, gw = e.gwColdAddr, e.gatewayCold
		t.fill = func(req *fasthttp.Request, w, i int) {
			n := (w*7919 + i*104729) % len(e.coldTokens)
			req.SetRequestURI("/api/companies/c050/sites/c050-s03/stock")
			req.Header.Set("Authorization", "Bearer "+e.coldTokens[n])
		}
		t.okStatus = 0 // mixed allows and permission denials: count transport errors only
	case "proxy-apikey-limited":
		// proxy-apikey with a bucket per key (local, never empty): what
		// taking a token costs.
		if e.gwLimited == nil {
			return scenarioResult{}, false, nil
		}
		t.addr, gw = e.gwLimitedAddr, e.gwLimited
		t.fill = apiFill("/api/orders/1")
	case "proxy-apikey-redis":
		// The same with the bucket in Redis: one script call per request.
		if e.gwRedis == nil {
			return scenarioResult{}, false, nil
		}
		t.addr, gw = e.gwRedisAddr, e.gwRedis
		t.fill = apiFill("/api/orders/1")
	case "redis-2-replicas":
		if e.replicas == nil {
			return scenarioResult{}, false, nil
		}
		return runReplicas(e, o)
	case "bad-keys":
		t.addr, gw = e.gwAddr, e.gateway
		t.okStatus = 401
		t.fill = func(req *fasthttp.Request, w, i int) {
			req.SetRequestURI("/api/orders/1")
			req.Header.Set("X-API-Key", "nokey-"+strconv.Itoa(w)+"-"+strconv.Itoa(i)+".wrong-secret")
		}
	default:
		return scenarioResult{}, false, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(allScenarios, ", "))
	}
	var cpu0 int64
	if gw != nil {
		cpu0, _ = cpuTime(gw.Pid())
	}
	var redis0, calls0 int64
	withRedis := false // a Redis scenario whose first CPU reading succeeded
	if e.redis != nil && strings.HasSuffix(name, "-redis") {
		// A fresh redis-server may not have used a clock tick yet: its
		// reading is 0, and the figures below are still due.
		var err error
		redis0, err = cpuTime(e.redis.Pid())
		withRedis = err == nil
		calls0 = redisCalls(gw)
	}
	var x0 int64
	if e.dbURL != "" {
		x0, _ = xactCount(ctx, e.dbURL, e.dbName)
	}
	var res loadResult
	if o.useWrk {
		var err error
		res, err = driveWrk(t, o.conns, o.warmup, o.duration)
		if err != nil {
			return scenarioResult{}, false, err
		}
	} else {
		res = drive(t, o.conns, o.warmup, o.duration)
	}
	if res.FirstError != "" {
		fmt.Fprintf(os.Stderr, "%s: first error: %s\n", name, res.FirstError)
	}
	r := scenarioResult{Name: name, Requests: res.Requests, RPS: res.RPS(), Errors: res.Errors,
		P50us: us(res.Percentile(50)), P99us: us(res.Percentile(99)), P999us: us(res.Percentile(99.9))}
	if gw != nil {
		// CPU is counted from the start of the warm-up; divide by all
		// requests the gateway served in that time (estimated from the rate).
		cpu1, _ := cpuTime(gw.Pid())
		served := res.RPS() * (o.warmup + o.duration).Seconds()
		if served > 0 {
			r.GatewayCPUus = float64(cpu1-cpu0) / served
		}
		r.GatewayPeakRSSKiB, _ = testproc.PeakRSS(gw.Pid())
		if withRedis && served > 0 {
			redis1, _ := cpuTime(e.redis.Pid())
			r.RedisCPUus = float64(redis1-redis0) / served
			if calls := redisCalls(gw) - calls0; calls > 0 {
				r.RedisTakesPerCall = served / float64(calls)
			}
		}
	}
	if e.dbURL != "" {
		time.Sleep(1100 * time.Millisecond) // pg_stat counters are flushed about once a second
		x1, _ := xactCount(ctx, e.dbURL, e.dbName)
		r.DBXactPerSec = float64(x1-x0-1) / (o.warmup + o.duration + 1100*time.Millisecond).Seconds()
	}
	return r, true, nil
}

// forwardAuthFill is the nginx-style forward-auth call for GET
// /api/orders/1 with one of the first 100 clients' API keys.
func forwardAuthFill() func(*fasthttp.Request, int, int) {
	inner := apiFill("/_auth")
	return func(req *fasthttp.Request, w, i int) {
		inner(req, w, i)
		req.Header.Set("X-Original-URI", "/api/orders/1")
		req.Header.Set("X-Original-Method", "GET")
	}
}

// apiFill sets path and one of the first 100 clients' API keys, spread over
// workers and requests.
func apiFill(path string) func(*fasthttp.Request, int, int) {
	tokens := make([]string, 100)
	for i := range tokens {
		tokens[i] = apiToken(i + 1)
	}
	return func(req *fasthttp.Request, w, i int) {
		req.SetRequestURI(path)
		req.Header.Set("X-API-Key", tokens[(w*31+i)%len(tokens)])
	}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
