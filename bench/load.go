package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// target is what one scenario sends: the address to dial and a function that
// fills request i (i counts requests of one worker).
type target struct {
	addr     string
	fill     func(req *fasthttp.Request, worker, i int)
	okStatus int // the status a successful request answers with
	// onStatus, if set, sees the status of every measured answer (the
	// replica scenario counts 200s and 429s with it).
	onStatus func(status int)
}

// loadResult is what one timed run measured.
type loadResult struct {
	Requests   int64
	Errors     int64 // transport errors and unexpected statuses
	Elapsed    time.Duration
	latencies  []time.Duration
	FirstError string // the first error seen, for the report
	// fixed holds percentiles reported by an external generator (wrk).
	fixed map[float64]time.Duration
}

// RPS returns requests per second.
func (r loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile returns the p-th percentile latency (p in 0..100).
func (r loadResult) Percentile(p float64) time.Duration {
	if r.fixed != nil {
		return r.fixed[p]
	}
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p / 100)
	return r.latencies[i]
}

// drive runs a closed loop: conns workers, each with one keep-alive
// connection, send a request, wait for the answer, send the next. It warms up
// for warmup, then measures for d. Bounded in time; loopback only.
func drive(t target, conns int, warmup, d time.Duration) loadResult {
	client := &fasthttp.HostClient{
		Addr:                          t.addr,
		MaxConns:                      conns,
		ReadTimeout:                   10 * time.Second,
		WriteTimeout:                  10 * time.Second,
		MaxIdleConnDuration:           time.Minute,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	defer client.CloseIdleConnections()

	var measuring atomic.Bool
	var stop atomic.Bool
	var requests, errors atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			local := make([]time.Duration, 0, 1<<16)
			for i := 0; !stop.Load(); i++ {
				req.Reset()
				req.Header.DisableNormalizing()
				t.fill(req, w, i)
				req.SetHost(t.addr)
				start := time.Now()
				err := client.Do(req, resp)
				el := time.Since(start)
				if !measuring.Load() {
					continue
				}
				requests.Add(1)
				if err == nil && t.onStatus != nil {
					t.onStatus(resp.StatusCode())
				}
				if err != nil || (t.okStatus > 0 && resp.StatusCode() != t.okStatus) {
					if errors.Add(1) == 1 {
						if err == nil {
							err = fmt.Errorf("status %d, want %d: %.200s", resp.StatusCode(), t.okStatus, resp.Body())
						}
						firstErr.Store(err.Error())
					}
				}
				local = append(local, el)
			}
			lat[w] = local
		}(w)
	}
	time.Sleep(warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(d)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sortDurations(all)
	res := loadResult{Requests: requests.Load(), Errors: errors.Load(), Elapsed: elapsed, latencies: all}
	if e, ok := firstErr.Load().(string); ok {
		res.FirstError = e
	}
	return res
}

// sortDurations sorts latencies for Percentile.
func sortDurations(d []time.Duration) { slices.Sort(d) }
