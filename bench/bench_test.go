package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/redistest"
)

func TestMain(m *testing.M) {
	maybeServeUpstream() // the test binary doubles as the upstream child
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	pgtest.Stop()
	os.Exit(code)
}

// The scopegate binary the smoke tests share: built once per test process
// (a link is slow on a busy machine).
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func gatewayBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "scopegate-bench-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "scopegate")
		out, err := exec.Command("go", "build", "-o", binPath, "./cmd/scopegate").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building scopegate: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// TestBenchSmoke runs the harness end to end for a fraction of a second per
// scenario (file store, so no seeding), so the benchmark users run keeps
// working. It checks that every scenario answered with its expected status;
// the figures themselves come from `go run ./bench`, never from a test.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	scenarios, n := "direct,proxy-public,proxy-apikey,proxy-jwt,forward-auth,fasthttp-proxy,fasthttp-proxy-safe,fasthttp-auth,bad-keys", 9
	// The Redis scenarios ride along (one harness start, not two).
	withRedis := redistest.Binary() != ""
	if withRedis {
		scenarios, n = scenarios+",proxy-apikey-limited,proxy-apikey-redis,redis-2-replicas", n+3
	} else if os.Getenv("CI") == "true" {
		t.Fatal("redis-server is not installed (fatal because CI=true)")
	} else {
		t.Log("SKIPPED the Redis scenarios: redis-server is not installed")
	}
	rs := checkOneRound(t, smokeRun(t, options{scenarios: scenarios, store: "file"}), n)
	if withRedis {
		checkRedisFigures(t, rs[n-3:])
	}
}

// smokeRun runs the harness from the repository root with o, each scenario
// for a fraction of a second with 4 connections, one round.
func smokeRun(t *testing.T, o options) *report {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	// No wall-clock budget of its own: on a busy machine starting the
	// processes alone can take minutes. go test's -timeout bounds the run;
	// the margin leaves the harness time to stop its children.
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	o.duration, o.warmup, o.conns, o.rounds = 300*time.Millisecond, 100*time.Millisecond, 4, 1
	o.bin = gatewayBinary(t)
	rep, err := runBench(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// checkOneRound asserts that rep is one round of n scenarios, each of which
// served requests without an error (every answer had its expected status).
func checkOneRound(t *testing.T, rep *report, n int) []scenarioResult {
	t.Helper()
	if len(rep.Rounds) != 1 || len(rep.Rounds[0].Scenarios) != n {
		t.Fatalf("rounds = %+v, want one round of %d scenarios", rep.Rounds, n)
	}
	for _, s := range rep.Rounds[0].Scenarios {
		if s.Requests == 0 || s.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors; want some requests and no errors", s.Name, s.Requests, s.Errors)
		}
	}
	return rep.Rounds[0].Scenarios
}

// TestBenchSmokePostgres runs the scenarios that read the database on the
// seeded PostgreSQL store (copyFixture), briefly: every answer has its
// expected status, cold-users reaches the database, and the benchmark
// database is dropped afterwards.
func TestBenchSmokePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds a database and runs the gateway")
	}
	admin := pgtest.NewEmptyDB(t) // skips loudly without PostgreSQL, fails under CI=true
	const name = "scopegate_bench_smoke"
	rep := smokeRun(t, options{
		scenarios: "proxy-apikey,proxy-jwt,forward-auth,cold-users,bad-keys", store: "pg",
		adminURL: admin, dbName: name,
	})
	for _, s := range checkOneRound(t, rep, 5) {
		if s.Name == "cold-users" && s.DBXactPerSec < 1 {
			t.Errorf("cold-users: %.1f database transactions/s, want the user lookups to reach the database", s.DBXactPerSec)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&left); err != nil || left {
		t.Errorf("benchmark database %s left behind (%v)", name, err)
	}
}

func TestSummaryMedians(t *testing.T) {
	rep := &report{Rounds: []roundResult{
		round1(1, []scenarioResult{{Name: "direct", RPS: 100}, {Name: "forward-auth", RPS: 80, GatewayCPUus: 20}}),
		round1(2, []scenarioResult{{Name: "forward-auth", RPS: 60, GatewayCPUus: 30}, {Name: "direct", RPS: 100}}),
		round1(3, []scenarioResult{{Name: "direct", RPS: 50}, {Name: "forward-auth", RPS: 45, GatewayCPUus: 25}}),
	}}
	rep.summarize()
	if len(rep.Summary) != 2 || rep.Summary[0].Name != "direct" || rep.Summary[1].Name != "forward-auth" {
		t.Fatalf("summary = %+v", rep.Summary)
	}
	fa := rep.Summary[1]
	if fa.Rounds != 3 || fa.MedianRatio != 0.8 || fa.MinRatio != 0.6 || fa.MaxRatio != 0.9 || fa.MedianGatewayCPU != 25 {
		t.Errorf("forward-auth summary = %+v, want 3 rounds, median 0.8, min 0.6, max 0.9, CPU 25", fa)
	}
	var b strings.Builder
	rep.print(&b)
	if !strings.Contains(b.String(), "all 3 rounds") {
		t.Errorf("printed report lacks the summary:\n%s", b.String())
	}
}

// checkRedisFigures checks the smoke results of proxy-apikey-limited,
// proxy-apikey-redis and redis-2-replicas: the replicas' admitted and
// refused counts and the takes per Redis call are reported. Redis's CPU is
// read in clock ticks (10 ms): a smoke run on a busy machine may not use
// one, so it is not checked (the figure comes from go run ./bench).
func checkRedisFigures(t *testing.T, rs []scenarioResult) {
	t.Helper()
	// A fraction of a second does not drain the 3,000-token bucket: 429s
	// are not expected here, only counted.
	if x := rs[2].Replicas; x == nil || x.Admitted == 0 || x.Admitted+x.Refused != rs[2].Requests {
		t.Errorf("replica figures missing: %+v", rs[2])
	}
	for _, r := range rs[1:] {
		if r.RedisTakesPerCall <= 0 {
			t.Errorf("redis figures missing: %+v", r)
		}
	}
}
