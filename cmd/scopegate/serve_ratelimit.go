package main

import (
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy"
	"github.com/scopegate/scopegate/store"
)

// openedBuckets are the rate-limit buckets serve runs with: nil buckets for
// the engine's own per-process ones (SCOPEGATE_RATE_LIMIT_BACKEND=local).
type openedBuckets struct {
	buckets proxy.Buckets
	metrics []*metrics.Set
	close   func()
}

// openBuckets builds the shared Redis buckets of SPEC §9 when
// SCOPEGATE_RATE_LIMIT_BACKEND=redis. It does not connect: a Redis that is
// down at start-up is handled as one that goes down later (the breaker and
// SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR), and /readyz never waits for it.
func openBuckets(cfg *Config, logger *slog.Logger, engine *policy.Engine) (*openedBuckets, error) {
	if cfg.RateLimitBackend != "redis" {
		return &openedBuckets{}, nil
	}
	mode, err := store.ParseRedisErrorMode(cfg.RateLimitOnRedisError)
	if err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR", Msg: err.Error()}
	}
	rb, err := store.NewRedisBuckets(store.RedisBucketsConfig{
		URL:       cfg.RedisURL,
		KeyPrefix: cfg.RedisKeyPrefix,
		Timeout:   cfg.RedisTimeout,
		OnError:   mode,
		Local:     engine,
		Logger:    logger,
	})
	if err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_REDIS_URL", Msg: err.Error()}
	}
	logger.Info("rate limits shared through Redis", slog.String("key_prefix", cfg.RedisKeyPrefix),
		slog.Duration("timeout", cfg.RedisTimeout), slog.String("on_redis_error", mode.String()))
	return &openedBuckets{buckets: rb, metrics: []*metrics.Set{rb.Metrics()}, close: func() { _ = rb.Close() }}, nil
}
