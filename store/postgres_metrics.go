package store

import (
	"github.com/VictoriaMetrics/metrics"
)

// storeMetrics are the PostgreSQL store's series (SPEC §5 /metrics).
type storeMetrics struct {
	userHits, userMisses   *metrics.Counter
	storeErrors            *metrics.Counter
	notifications          *metrics.Counter
	reconnects             *metrics.Counter
	reloads                *metrics.Counter
	flushOK, flushFailures *metrics.Counter
	flushRows              *metrics.Counter
	feedLag                *metrics.PrometheusHistogram
}

// Metric names, for dashboards and tests.
const (
	MetricCacheHits     = `scopegate_store_cache_hits_total{cache="user"}`
	MetricCacheMisses   = `scopegate_store_cache_misses_total{cache="user"}`
	MetricStoreErrors   = `scopegate_store_errors_total{source="postgres"}`
	MetricNotifications = `scopegate_change_feed_notifications_total`
	MetricReconnects    = `scopegate_change_feed_reconnects_total`
	MetricReloads       = `scopegate_store_full_reloads_total`
	MetricFeedLag       = `scopegate_change_feed_lag_seconds`
	MetricFlushes       = `scopegate_last_used_flushes_total`
	MetricFlushFailures = `scopegate_last_used_flush_failures_total`
	MetricFlushRows     = `scopegate_last_used_flushed_clients_total`
	MetricClients       = `scopegate_store_clients`
	MetricStoreUp       = `scopegate_store_up`
)

func newStoreMetrics(set *metrics.Set, s *Postgres) *storeMetrics {
	m := &storeMetrics{
		userHits:      set.GetOrCreateCounter(MetricCacheHits),
		userMisses:    set.GetOrCreateCounter(MetricCacheMisses),
		storeErrors:   set.GetOrCreateCounter(MetricStoreErrors),
		notifications: set.GetOrCreateCounter(MetricNotifications),
		reconnects:    set.GetOrCreateCounter(MetricReconnects),
		reloads:       set.GetOrCreateCounter(MetricReloads),
		flushOK:       set.GetOrCreateCounter(MetricFlushes),
		flushFailures: set.GetOrCreateCounter(MetricFlushFailures),
		flushRows:     set.GetOrCreateCounter(MetricFlushRows),
		feedLag: set.GetOrCreatePrometheusHistogramExt(MetricFeedLag,
			[]float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}),
	}
	set.GetOrCreateGauge(MetricClients, func() float64 { return float64(s.Clients()) })
	set.GetOrCreateGauge(MetricStoreUp, func() float64 {
		if s.loaded.Load() && !s.down.Load() {
			return 1
		}
		return 0
	})
	return m
}
