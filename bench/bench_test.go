package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	maybeServeUpstream() // the test binary doubles as the upstream child
	os.Exit(m.Run())
}

// TestBenchSmoke runs the harness end to end for a fraction of a second per
// scenario (file store, so no seeding), so the benchmark users run keeps
// working. It checks that every scenario answered with its expected status;
// the figures themselves come from `go run ./bench`, never from a test.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(root); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := runBench(ctx, options{
		duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond, conns: 4, rounds: 1,
		scenarios: "direct,proxy-public,proxy-apikey,proxy-jwt,forward-auth,fasthttp-proxy,bad-keys", store: "file",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 1 || len(rep.Rounds[0].Scenarios) != 7 {
		t.Fatalf("rounds = %+v, want one round of 7 scenarios", rep.Rounds)
	}
	for _, s := range rep.Rounds[0].Scenarios {
		if s.Requests == 0 || s.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors; want some requests and no errors", s.Name, s.Requests, s.Errors)
		}
	}
}
