package main

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// driveWrk runs wrk (when installed) with the first request the scenario
// would send: a fixed request, so per-request variations (rotating keys,
// tokens) are not reproduced. Latency percentiles come from wrk --latency.
func driveWrk(t target, conns int, warmup, d time.Duration) (loadResult, error) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		return loadResult{}, fmt.Errorf("-wrk: wrk is not installed (apt-get install wrk)")
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	t.fill(req, 0, 0)
	var hdrs []string
	req.Header.VisitAll(func(k, v []byte) {
		if string(k) != "Host" {
			hdrs = append(hdrs, "-H", string(k)+": "+string(v))
		}
	})
	url := "http://" + t.addr + string(req.RequestURI())
	threads := "2"
	if warmup > 0 {
		_ = exec.Command(bin, append([]string{"-t", threads, "-c", strconv.Itoa(conns), "-d", warmup.String(), url}, hdrs...)...).Run()
	}
	out, err := exec.Command(bin, append([]string{"-t", threads, "-c", strconv.Itoa(conns), "-d", strconv.Itoa(int(d.Seconds())) + "s", "--latency", url}, hdrs...)...).CombinedOutput()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	return parseWrk(string(out), d)
}

var wrkReqs = regexp.MustCompile(`(\d+) requests in ([\d.]+)(\w+)`)
var wrkLat = regexp.MustCompile(`(?m)^\s+(50|99|99\.9)(?:0*)?%\s+([\d.]+)(\w+)`)
var wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)

func parseWrk(out string, d time.Duration) (loadResult, error) {
	m := wrkReqs.FindStringSubmatch(out)
	if m == nil {
		return loadResult{}, fmt.Errorf("wrk output not understood:\n%s", out)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	res := loadResult{Requests: n, Elapsed: d, fixed: map[float64]time.Duration{}}
	if e := wrkNon2xx.FindStringSubmatch(out); e != nil {
		res.Errors, _ = strconv.ParseInt(e[1], 10, 64)
	}
	for _, l := range wrkLat.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		p, _ := strconv.ParseFloat(l[1], 64)
		res.fixed[p] = time.Duration(v * float64(unit(strings.ToLower(l[3]))))
	}
	return res, nil
}

func unit(s string) time.Duration {
	switch s {
	case "us":
		return time.Microsecond
	case "ms":
		return time.Millisecond
	case "s":
		return time.Second
	}
	return time.Nanosecond
}
