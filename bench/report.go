package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// scenarioResult is one scenario of one round.
type scenarioResult struct {
	Name              string  `json:"name"`
	Requests          int64   `json:"requests"`
	RPS               float64 `json:"rps"`
	RatioToDirect     float64 `json:"ratio_to_direct"` // 0 when the round has no direct run
	P50us             float64 `json:"p50_us"`
	P99us             float64 `json:"p99_us"`
	P999us            float64 `json:"p999_us"`
	GatewayCPUus      float64 `json:"gateway_cpu_us_per_req,omitempty"`
	GatewayPeakRSSKiB int64   `json:"gateway_peak_rss_kib,omitempty"`
	DBXactPerSec      float64 `json:"db_xact_per_sec"`
	Errors            int64   `json:"errors"`
	// RedisCPUus is the private redis-server's CPU per request (Redis
	// scenarios).
	RedisCPUus float64 `json:"redis_cpu_us_per_req,omitempty"`
	// RedisTakesPerCall is the requests per script call to Redis (the
	// batching the gateway achieved; from scopegate_redis_calls_total).
	RedisTakesPerCall float64 `json:"redis_takes_per_call,omitempty"`
	// Replicas: redis-2-replicas drives one key above its limit through two
	// gateways; Admitted is what they let through per second against the
	// configured rate.
	Replicas *replicaResult `json:"replicas,omitempty"`
}

// replicaResult is the accuracy of the shared limit across replicas.
type replicaResult struct {
	Replicas         int     `json:"replicas"`
	ConfiguredPerSec float64 `json:"configured_per_sec"`
	AdmittedPerSec   float64 `json:"admitted_per_sec"`
	Admitted         int64   `json:"admitted"`
	Refused          int64   `json:"refused"`
	Seconds          float64 `json:"seconds"`
	// Bound is SPEC §9's most that may be admitted in Seconds: N + N/60
	// per second + 1 per replica (N: the bucket's capacity, full before
	// the warm-up; the measured window starts with it drained).
	Bound float64 `json:"bound"`
}

// roundResult is one pass over the scenarios.
type roundResult struct {
	Round     int              `json:"round"`
	Scenarios []scenarioResult `json:"scenarios"`
}

// report is the whole run, as printed and written to JSON.
type report struct {
	Machine  machine       `json:"machine"`
	Store    string        `json:"store"`
	Conns    int           `json:"conns"`
	Duration string        `json:"duration"`
	Rounds   []roundResult `json:"rounds"`
	Summary  []summaryRow  `json:"summary,omitempty"` // with more than one round
}

// summaryRow is one scenario over all rounds: the median, and the spread,
// of its ratio to direct and of the gateway's CPU per request. On a noisy
// machine the median of several alternating rounds is the figure to quote.
type summaryRow struct {
	Name             string  `json:"name"`
	Rounds           int     `json:"rounds"`
	MedianRatio      float64 `json:"median_ratio_to_direct"`
	MinRatio         float64 `json:"min_ratio_to_direct"`
	MaxRatio         float64 `json:"max_ratio_to_direct"`
	MedianGatewayCPU float64 `json:"median_gateway_cpu_us_per_req,omitempty"`
}

// summarize fills r.Summary from the rounds, in the order of round 1.
func (r *report) summarize() {
	if len(r.Rounds) < 2 {
		return
	}
	ratios, cpus := map[string][]float64{}, map[string][]float64{}
	var order []string
	for _, rd := range r.Rounds {
		for _, s := range rd.Scenarios {
			if _, seen := ratios[s.Name]; !seen {
				order = append(order, s.Name)
			}
			ratios[s.Name] = append(ratios[s.Name], s.RatioToDirect)
			if s.GatewayCPUus > 0 {
				cpus[s.Name] = append(cpus[s.Name], s.GatewayCPUus)
			}
		}
	}
	r.Summary = nil
	for _, name := range order {
		v := ratios[name]
		med := median(v) // sorts v
		r.Summary = append(r.Summary, summaryRow{
			Name: name, Rounds: len(v), MedianRatio: med, MinRatio: v[0], MaxRatio: v[len(v)-1],
			MedianGatewayCPU: median(cpus[name]),
		})
	}
}

// median returns the median of v (sorted in place); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// round1 fills the ratios to direct of the same round.
func round1(n int, rs []scenarioResult) roundResult {
	var direct float64
	for _, r := range rs {
		if r.Name == "direct" {
			direct = r.RPS
		}
	}
	if direct > 0 {
		for i := range rs {
			rs[i].RatioToDirect = rs[i].RPS / direct
		}
	}
	return roundResult{Round: n, Scenarios: rs}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "machine: %d cores, %s, %s; store=%s conns=%d duration=%s\n",
		r.Machine.Cores, r.Machine.CPUModel, r.Machine.GoVersion, r.Store, r.Conns, r.Duration)
	for _, rd := range r.Rounds {
		fmt.Fprintf(w, "\nround %d\n", rd.Round)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\treq/s\t% direct\tp50 µs\tp99 µs\tp99.9 µs\tgw CPU µs/req\tgw peak RSS MiB\tdb xact/s\terrors\t")
		for _, s := range rd.Scenarios {
			cpu, rss := "-", "-"
			if s.GatewayCPUus > 0 {
				cpu = fmt.Sprintf("%.1f", s.GatewayCPUus)
				rss = fmt.Sprintf("%.1f", float64(s.GatewayPeakRSSKiB)/1024)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f%%\t%.0f\t%.0f\t%.0f\t%s\t%s\t%.1f\t%d\t\n",
				s.Name, s.RPS, s.RatioToDirect*100, s.P50us, s.P99us, s.P999us, cpu, rss, s.DBXactPerSec, s.Errors)
		}
		tw.Flush()
		for _, s := range rd.Scenarios {
			if s.RedisCPUus > 0 {
				fmt.Fprintf(w, "  %s: redis-server CPU %.1f µs/req, %.1f requests per script call\n", s.Name, s.RedisCPUus, s.RedisTakesPerCall)
			}
			if x := s.Replicas; x != nil {
				fmt.Fprintf(w, "  %s: %d replicas admitted %.1f/s against a configured %.1f/s (%.1f%%): %d admitted, %d refused in %.1fs (SPEC §9 bound %.0f)\n",
					s.Name, x.Replicas, x.AdmittedPerSec, x.ConfiguredPerSec, 100*x.AdmittedPerSec/x.ConfiguredPerSec, x.Admitted, x.Refused, x.Seconds, x.Bound)
			}
		}
	}
	if len(r.Summary) > 0 {
		fmt.Fprintf(w, "\nall %d rounds: median (min-max) %% of direct\n", len(r.Rounds))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tmedian % direct\tmin-max\tmedian gw CPU µs/req\t")
		for _, s := range r.Summary {
			cpu := "-"
			if s.MedianGatewayCPU > 0 {
				cpu = fmt.Sprintf("%.1f", s.MedianGatewayCPU)
			}
			fmt.Fprintf(tw, "%s\t%.0f%%\t%.0f-%.0f%%\t%s\t\n", s.Name, s.MedianRatio*100, s.MinRatio*100, s.MaxRatio*100, cpu)
		}
		tw.Flush()
	}
}
