package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/redistest"
	"github.com/scopegate/scopegate/internal/storetest"
)

// redisReplicas starts n gateways (the real serve) on one fresh database
// and one Redis at redisAddr, sharing one key prefix, with the Redis backend
// and extra settings.
func redisReplicas(t *testing.T, n int, dsn, redisAddr string, extra map[string]string) []*gateway {
	t.Helper()
	prefix := redistest.Prefix(t)
	var gs []*gateway
	for i := 0; i < n; i++ {
		env := parityEnv(t)
		env["SCOPEGATE_DATABASE_URL"] = dsn
		env["SCOPEGATE_RATE_LIMIT_BACKEND"] = "redis"
		env["SCOPEGATE_REDIS_URL"] = "redis://" + redisAddr + "/0"
		env["SCOPEGATE_REDIS_KEY_PREFIX"] = prefix
		// Generous for a machine shared by parallel test runs: a call that
		// times out may still have taken its token in Redis.
		env["SCOPEGATE_REDIS_TIMEOUT"] = "2s"
		for k, v := range extra {
			env[k] = v
		}
		gs = append(gs, startGateway(t, env))
	}
	return gs
}

// setRateLimit sets client_key's rate_limit_per_min in the database.
func setRateLimit(t *testing.T, dsn, clientKey string, perMin int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE api_clients SET rate_limit_per_min = $1 WHERE client_key = $2`, perMin, clientKey); err != nil {
		t.Fatal(err)
	}
}

// keyAnswer is what a gateway answered to one API-key request.
type keyAnswer struct {
	status                  int
	reason                  string
	limit, remaining, retry string // RateLimit-Limit, RateLimit-Remaining, Retry-After
	reset                   string // RateLimit-Reset
}

var keyClient = &http.Client{Timeout: 10 * time.Second}

// getWithKey sends GET /api/things with the fixture's token of clientKey.
func getWithKey(t *testing.T, g *gateway, clientKey string) keyAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", g.base+"/api/things", nil)
	req.Header.Set("X-API-Key", storetest.Basic().Token(clientKey))
	resp, err := keyClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := keyAnswer{status: resp.StatusCode, limit: resp.Header.Get("RateLimit-Limit"), remaining: resp.Header.Get("RateLimit-Remaining"),
		retry: resp.Header.Get("Retry-After"), reset: resp.Header.Get("RateLimit-Reset")}
	if i := strings.Index(string(b), `"reason":"`); i >= 0 {
		a.reason = string(b[i+10:])
		a.reason = a.reason[:strings.IndexByte(a.reason, '"')]
	}
	return a
}

// TestServeRedisReplicasAccuracy: three replicas on one database and one
// Redis, a key with rate_limit_per_min = 60 driven above its limit
// round-robin through all three until 60 are refused: the admitted count
// stays within SPEC §9's bound (N + N/60 per second elapsed + 1 per
// replica), and at least N are admitted (a full bucket is never refused).
func TestServeRedisReplicasAccuracy(t *testing.T) {
	addr := redistest.Shared(t)
	dsn := parityDB(t)
	const limit, replicas = 60, 3
	setRateLimit(t, dsn, "limited", limit)
	// deny: a Redis error is a 503 (reported), never a per-process
	// admission.
	gs := redisReplicas(t, replicas, dsn, addr, map[string]string{"SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR": "deny"})

	var admitted, refused, other atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Until the load has clearly gone above the limit (60
			// refusals), however slow a busy machine makes it; bounded.
			for i := 0; refused.Load() < limit && time.Since(start) < 60*time.Second; i++ {
				switch a := getWithKey(t, gs[(w+i)%replicas], "limited"); a.status {
				case 200:
					admitted.Add(1)
				case 429:
					refused.Add(1)
				default:
					other.Add(1)
					t.Errorf("answer %+v", a)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	bound := float64(limit) + float64(limit)/60*elapsed + replicas
	t.Logf("3 replicas, limit %d/min: %d admitted, %d refused in %.2fs; bound %.1f", limit, admitted.Load(), refused.Load(), elapsed, bound)
	if float64(admitted.Load()) > bound {
		t.Errorf("%d admitted, above the bound %.1f", admitted.Load(), bound)
	}
	if admitted.Load() < limit {
		t.Errorf("%d admitted, want at least the bucket's %d", admitted.Load(), limit)
	}
	if refused.Load() == 0 {
		t.Error("nothing refused: the load never went above the limit")
	}
	for i, g := range gs {
		if m := metricValue(t, g, "scopegate_redis_errors_total"); m != 0 {
			t.Errorf("replica %d: %v Redis errors", i, m)
		}
	}
}

// metricValue reads one sample of g's /metrics.
func metricValue(t *testing.T, g *gateway, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("/metrics lacks %s", name)
	return 0
}

// TestServeRedisReplicasHeaders: the replicas answer from one bucket, so
// their RateLimit headers continue each other's; a 429 from any replica has
// the same Retry-After; a changed limit reaches every replica (change feed)
// and applies at its next request.
func TestServeRedisReplicasHeaders(t *testing.T) {
	addr := redistest.Shared(t)
	dsn := parityDB(t)
	setRateLimit(t, dsn, "limited", 6) // one token per 10 s
	gs := redisReplicas(t, 3, dsn, addr, map[string]string{"SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR": "deny"})
	for i := 0; i < 6; i++ {
		a := getWithKey(t, gs[i%3], "limited")
		if a.status != 200 || a.limit != "6" || a.remaining != strconv.Itoa(5-i) {
			t.Errorf("request %d via replica %d: %+v, want 200 limit 6 remaining %d", i, i%3, a, 5-i)
		}
	}
	var retries []int
	for i := 0; i < 3; i++ {
		a := getWithKey(t, gs[i], "limited")
		if a.status != 429 || a.reason != "rate_limited" || a.remaining != "0" || a.limit != "6" {
			t.Errorf("replica %d over the limit: %+v", i, a)
		}
		n, _ := strconv.Atoi(a.retry)
		retries = append(retries, n)
	}
	for _, r := range retries {
		if r < 1 || r > 10 || r < retries[0]-1 || r > retries[0] {
			t.Errorf("Retry-After across replicas %v: want 1–10, one bucket's countdown", retries)
		}
	}

	setRateLimit(t, dsn, "limited", 600)
	for i, g := range gs {
		for deadline := time.Now().Add(10 * time.Second); ; {
			a := getWithKey(t, g, "limited")
			if a.limit == "600" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d still answers %+v after the limit changed", i, a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestServeRedisCut cuts Redis through a TCP relay under each
// SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR: the mode decides the rate limit,
// authentication is untouched, /readyz stays 200, and the shared limit is
// back on its own once Redis answers.
func TestServeRedisCut(t *testing.T) {
	addr := redistest.Shared(t)
	dsn := parityDB(t)
	for _, tc := range []struct {
		mode, cut string
		want      keyAnswer // status, reason, limit
	}{
		{"local", "drop", keyAnswer{status: 200, limit: "2"}},
		{"allow", "drop", keyAnswer{status: 200}},
		{"deny", "drop", keyAnswer{status: 503, reason: "rate_limit_unavailable"}},
		{"deny", "hang", keyAnswer{status: 503, reason: "rate_limit_unavailable"}},
	} {
		t.Run(tc.mode+"-"+tc.cut, func(t *testing.T) {
			relay := redistest.NewRelay(t, addr)
			g := redisReplicas(t, 1, dsn, relay.Addr, map[string]string{"SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR": tc.mode, "SCOPEGATE_REDIS_TIMEOUT": "500ms"})[0]
			if a := getWithKey(t, g, "limited"); a.status != 200 || a.remaining != "1" {
				t.Fatalf("through the relay: %+v", a)
			}
			relay.Set(map[string]redistest.RelayMode{"drop": redistest.Drop, "hang": redistest.Hang}[tc.cut])
			a := getWithKey(t, g, "limited")
			if a.status != tc.want.status || a.reason != tc.want.reason || a.limit != tc.want.limit {
				t.Errorf("Redis cut: %+v, want %+v", a, tc.want)
			}
			if a := getWithKey(t, g, "app"); a.status != 200 {
				t.Errorf("a key without a limit with Redis cut: %+v", a)
			}
			if a := getWithKey(t, g, "nosuch"); a.status != 401 || a.reason != "api_key_invalid" {
				t.Errorf("an unknown key with Redis cut: %+v, want 401 api_key_invalid", a)
			}
			if resp, err := http.Get("http://" + g.admin + "/readyz"); err != nil || resp.StatusCode != 200 {
				t.Errorf("/readyz with Redis cut: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
			relay.Set(redistest.Pass)
			// Back on the shared bucket: one of its two tokens was taken
			// before the cut, so the next shared answer is 1 → 0 left.
			for deadline := time.Now().Add(10 * time.Second); ; {
				a := getWithKey(t, g, "limited")
				if a.status == 200 && a.remaining == "0" && tc.mode != "local" {
					break
				}
				if tc.mode == "local" && a.status == 429 {
					break // the shared bucket (or the local one) is used up either way
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the relay was restored: %+v", a)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestServeRedisRestart restarts a private redis-server under two replicas
// (ON_REDIS_ERROR=deny, so every answer is Redis's): requests fail 503
// while it is down, and the shared limit is back on its own afterwards
// (the keys are gone with the restart: a full bucket).
func TestServeRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	dsn := parityDB(t)
	gs := redisReplicas(t, 2, dsn, srv.Addr, map[string]string{"SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR": "deny"})
	for i, want := range []int{200, 200, 429} {
		if a := getWithKey(t, gs[i%2], "limited"); a.status != want {
			t.Fatalf("request %d: %+v, want %d", i, a, want)
		}
	}
	srv.Restart()
	if a := untilNot503(t, gs[0]); a.status != 200 || a.remaining != "1" {
		t.Errorf("first answer after the restart: %+v, want 200 with a full bucket's 1 left", a)
	}
	if a := untilNot503(t, gs[1]); a.status != 200 || a.remaining != "0" {
		t.Errorf("the other replica after the restart: %+v, want the shared bucket's last token", a)
	}
	if a := getWithKey(t, gs[1], "limited"); a.status != 429 {
		t.Errorf("the other replica, over the limit: %+v", a)
	}
}

// untilNot503 asks g with the limited key until the answer is not 503
// rate_limit_unavailable (Redis answers again), for at most 10 s.
func untilNot503(t *testing.T, g *gateway) keyAnswer {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		a := getWithKey(t, g, "limited")
		if a.status != 503 {
			return a
		}
		if a.reason != "rate_limit_unavailable" || time.Now().After(deadline) {
			t.Fatalf("waiting for Redis: %+v", a)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
