package proxy

import (
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
