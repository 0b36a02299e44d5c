package main

import (
	"strconv"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/console"
	"github.com/scopegate/scopegate/store"
)

// newConsole builds the operator page's counters and API (SPEC §13) for
// serve's engine, store and rate-limit buckets.
func newConsole(cfg *Config, engine *policy.Engine, st *openedStore, b *openedBuckets) *console.Console {
	c := console.Config{
		Version:                version,
		StoreKind:              st.kind,
		Store:                  st.view,
		Routes:                 engine,
		DefaultRateLimitPerMin: cfg.DefaultRateLimitPerMin,
		RateLimitBackend:       "local",
		Settings:               consoleSettings(cfg),
	}
	if rb, ok := b.buckets.(*store.RedisBuckets); ok {
		c.RateLimitBackend, c.RateLimitState = "redis", rb.State
	}
	return console.New(c)
}

// consoleSettings is the configuration the page shows: names and values
// that hold no secret (no database URL, JWT secret or admin token; whether
// the admin token is set, not its value).
func consoleSettings(cfg *Config) []console.Setting {
	orNone := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	mode := "reverse proxy and forward-auth"
	if cfg.UpstreamURL == "" {
		mode = "forward-auth and decision-only"
	}
	set := "not set"
	if cfg.AdminToken != "" {
		set = "set"
	}
	return []console.Setting{
		{Name: "mode", Value: mode},
		{Name: "SCOPEGATE_LISTEN_ADDR", Value: cfg.ListenAddr},
		{Name: "SCOPEGATE_ADMIN_ADDR", Value: cfg.AdminAddr},
		{Name: "SCOPEGATE_AUTH_PATH", Value: cfg.AuthPath},
		{Name: "upstreams", Value: strconv.Itoa(len(splitList(cfg.UpstreamURL)))},
		{Name: "SCOPEGATE_ROUTES_FILE", Value: orNone(cfg.RoutesFile)},
		{Name: "SCOPEGATE_TRUSTED_PROXIES", Value: cfg.TrustedProxies},
		{Name: "SCOPEGATE_DEFAULT_RATE_LIMIT_PER_MIN", Value: strconv.Itoa(cfg.DefaultRateLimitPerMin)},
		{Name: "SCOPEGATE_RATE_LIMIT_BACKEND", Value: cfg.RateLimitBackend},
		{Name: "SCOPEGATE_STALE_TTL", Value: cfg.StaleTTL.String()},
		{Name: "SCOPEGATE_CACHE_TTL", Value: cfg.CacheTTL.String()},
		{Name: "SCOPEGATE_LOG_ALLOWED", Value: strconv.FormatBool(cfg.LogAllowed)},
		{Name: "SCOPEGATE_ADMIN_TOKEN", Value: set},
	}
}
