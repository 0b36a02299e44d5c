package proxy

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scopegate/scopegate/policy"
)

// proxyMetrics are the proxy's Prometheus series. Counters per reason are
// created up front so the hot path only indexes an array.
type proxyMetrics struct {
	allowed             *metrics.Counter
	deniedBy            []*metrics.Counter // index: policy.Reason
	rateLimited         *metrics.Counter
	storeErrors         *metrics.Counter
	badRequests         *metrics.Counter
	upstreamUnavailable *metrics.Counter
	upstreamTimeouts    *metrics.Counter
	decisionSeconds     *metrics.PrometheusHistogram
	upstreamSeconds     *metrics.PrometheusHistogram

	// inFlight counts the requests the handler is serving now.
	inFlight *metrics.Gauge
	// set is where the per-route request counters are created.
	set *metrics.Set
	// noRoute counts the answers to requests no route matched (and those
	// answered before any decision), by status class.
	noRoute [statusClasses]*metrics.Counter
	// byRoute holds the request counters of one compiled routes file, one
	// per route and status class, built once per routes file (at start and
	// after a reload), so counting an answer is an index, never a lookup
	// by name.
	byRoute  atomic.Pointer[routeCounters]
	byRouteM sync.Mutex // serializes building byRoute
}

// statusClasses are the status classes scopegate_requests_total counts:
// 1xx (a WebSocket tunnel's 101) to 5xx.
const statusClasses = 5

var statusClassNames = [statusClasses]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// noRouteLabel is the route label of requests no route matched.
const noRouteLabel = "none"

// routeCounters are the request counters of the routes file routes.
type routeCounters struct {
	routes  *policy.Routes
	byRoute [][statusClasses]*metrics.Counter
}

func newProxyMetrics(s *metrics.Set) *proxyMetrics {
	m := &proxyMetrics{
		allowed:             s.GetOrCreateCounter(`scopegate_decisions_total{result="allow",reason=""}`),
		rateLimited:         s.GetOrCreateCounter(`scopegate_rate_limited_total`),
		storeErrors:         s.GetOrCreateCounter(`scopegate_proxy_store_errors_total`),
		badRequests:         s.GetOrCreateCounter(`scopegate_bad_requests_total`),
		upstreamUnavailable: s.GetOrCreateCounter(`scopegate_upstream_errors_total{reason="upstream_unavailable"}`),
		upstreamTimeouts:    s.GetOrCreateCounter(`scopegate_upstream_errors_total{reason="upstream_timeout"}`),
		decisionSeconds: s.GetOrCreatePrometheusHistogramExt(`scopegate_decision_duration_seconds`,
			[]float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}),
		upstreamSeconds: s.GetOrCreatePrometheusHistogramExt(`scopegate_upstream_duration_seconds`,
			[]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
	}
	m.set = s
	m.inFlight = s.GetOrCreateGauge(`scopegate_requests_in_flight`, nil)
	m.noRoute = requestCounters(s, noRouteLabel)
	all := policy.AllReasons()
	max := 0
	for _, r := range all {
		if int(r) > max {
			max = int(r)
		}
	}
	m.deniedBy = make([]*metrics.Counter, max+1)
	for _, r := range all {
		m.deniedBy[r] = s.GetOrCreateCounter(`scopegate_decisions_total{result="deny",reason="` + r.String() + `"}`)
	}
	return m
}

// denied returns the counter of denials with reason r.
func (m *proxyMetrics) denied(r policy.Reason) *metrics.Counter {
	if int(r) >= len(m.deniedBy) || m.deniedBy[r] == nil {
		return m.deniedBy[policy.ReasonInternal]
	}
	return m.deniedBy[r]
}

// requestCounters returns the scopegate_requests_total counters of route,
// one per status class.
func requestCounters(s *metrics.Set, route string) [statusClasses]*metrics.Counter {
	var c [statusClasses]*metrics.Counter
	label := labelValue(route)
	for i, class := range statusClassNames {
		c[i] = s.GetOrCreateCounter(`scopegate_requests_total{code="` + class + `",route="` + label + `"}`)
	}
	return c
}

// labelValue escapes s for a Prometheus label value.
func labelValue(s string) string { return labelEscaper.Replace(s) }

// labelEscaper is built once: a Replacer is safe for concurrent use.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// routeCountersFor returns the request counters of routes, building them
// when routes is not the routes file they were last built for (the first
// request after a reload builds them; every other one loads a pointer).
// Counters of the same pattern are the same series across reloads.
func (m *proxyMetrics) routeCountersFor(routes *policy.Routes) *routeCounters {
	if rc := m.byRoute.Load(); rc != nil && rc.routes == routes {
		return rc
	}
	m.byRouteM.Lock()
	defer m.byRouteM.Unlock()
	if rc := m.byRoute.Load(); rc != nil && rc.routes == routes {
		return rc
	}
	rc := &routeCounters{routes: routes, byRoute: make([][statusClasses]*metrics.Counter, routes.Len())}
	for i := range rc.byRoute {
		rc.byRoute[i] = requestCounters(m.set, routes.Path(i))
	}
	m.byRoute.Store(rc)
	return rc
}

// countRequest counts an answer with status to a request decided on route
// (an index into routes; -1 when none matched).
func (m *proxyMetrics) countRequest(routes *policy.Routes, route, status int) {
	class := status/100 - 1
	if class < 0 {
		class = 0
	} else if class >= statusClasses {
		class = statusClasses - 1
	}
	if route >= 0 {
		if rc := m.routeCountersFor(routes); route < len(rc.byRoute) {
			rc.byRoute[route][class].Inc()
			return
		}
	}
	m.noRoute[class].Inc()
}
