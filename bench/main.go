// Command bench measures scopegate against the direct path and nginx, side by
// side, on one machine: a fasthttp upstream on loopback, the real scopegate
// binary on a real PostgreSQL database (or the declarative store), and a
// closed-loop load generator with N keep-alive connections.
//
//	go run ./bench -duration 10s -conns 64 -out bench/results.json
//
// With -out, the results are also drawn as a chart beside the JSON
// (bench/results.svg); -chart FILE.json draws the chart of earlier results.
//
// Each scenario runs for a fixed time after a warm-up, one at a time, in
// order and then again in reverse order, so a drifting machine speed shows.
// Ratios are to `direct` of the same round. See bench/RESULTS.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	duration  time.Duration
	warmup    time.Duration
	conns     int
	scenarios string
	out       string
	store     string
	adminURL  string
	bin       string
	rounds    int
	useWrk    bool
	keep      bool
	dbName    string // the benchmark database (default scopegate_bench)
	baseline  string // -baseline: a second binary measured in the same rounds
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up time per scenario")
	flag.IntVar(&o.conns, "conns", 64, "keep-alive connections of the load generator")
	flag.StringVar(&o.scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios")
	flag.StringVar(&o.out, "out", "", "write the results as JSON to this file")
	flag.StringVar(&o.store, "store", "pg", "pg (PostgreSQL, seeded) or file (declarative store)")
	flag.StringVar(&o.adminURL, "database", envOr("SCOPEGATE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server to create the benchmark database on")
	flag.StringVar(&o.bin, "bin", "", "scopegate binary (default: build ./cmd/scopegate)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds: 1 = in order; 2 = in order, then reversed")
	flag.BoolVar(&o.useWrk, "wrk", false, "drive load with wrk instead of the built-in generator (when installed)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory and the benchmark database")
	flag.StringVar(&o.baseline, "baseline", "", "a second scopegate binary (say, the previous commit) measured in the same rounds: each gateway scenario is followed by <scenario>@baseline")
	chartOf := flag.String("chart", "", "draw the chart of a results JSON file (FILE.json to FILE.svg) and exit")
	flag.Parse()
	maybeServeUpstream()
	if *chartOf != "" {
		if err := writeChartOf(*chartOf); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	rep, err := runBench(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	rep.print(os.Stdout)
	if o.out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.out, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "wrote", o.out)
		if err := os.WriteFile(svgPath(o.out), rep.svg(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "wrote", svgPath(o.out))
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// machine describes where the figures were measured.
type machine struct {
	Cores     int    `json:"cores"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	Command   string `json:"command"`
	Date      string `json:"date"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Command: "go run ./bench " + strings.Join(os.Args[1:], " "), Date: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.IndexByte(l, ':'); i >= 0 {
					m.CPUModel = strings.TrimSpace(l[i+1:])
				}
				break
			}
		}
	}
	return m
}
