package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy"
	"github.com/scopegate/scopegate/proxy/extauthz"
)

// cmdServe runs the gateway until SIGTERM or SIGINT (SPEC §5, §8).
func cmdServe(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return &usageError{msg: "serve takes no arguments (configuration is SCOPEGATE_* variables)"}
	}
	return withConfigAndSignals(stderr, func(cfg *Config, logger *slog.Logger, sigs <-chan os.Signal) error {
		return serve(cfg, logger, sigs, nil)
	})
}

// withConfigAndSignals loads the configuration, builds the logger and runs
// fn with SIGTERM, SIGINT and SIGHUP delivered on sigs (serve and demo).
func withConfigAndSignals(stderr io.Writer, fn func(cfg *Config, logger *slog.Logger, sigs <-chan os.Signal) error) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return fn(cfg, logger, sigs)
}

// newLogger builds the JSON logger of SCOPEGATE_LOG_LEVEL.
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_LOG_LEVEL", Msg: fmt.Sprintf("%q is not debug, info, warn or error", level)}
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: durationText})), nil
}

// durationText writes durations as Go duration strings ("15s"), not the
// integer nanoseconds slog's JSON handler writes, on every log line.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// serveStarted reports the bound addresses once both listeners accept
// (tests use it to learn the ports of ":0" listeners).
type serveStarted func(traffic, admin net.Addr)

// serve runs the gateway with cfg until a SIGTERM/SIGINT arrives on sigs
// (SIGHUP reloads). It returns nil after a graceful shutdown.
func serve(cfg *Config, logger *slog.Logger, sigs <-chan os.Signal, started serveStarted) error {
	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()

	if cfg.DatabaseURL == "" && cfg.StoreFile == "" {
		return errNoStore
	}
	if cfg.userSyncOn() && cfg.DatabaseURL == "" {
		return errSyncFileStore
	}
	routes, err := loadRoutes(cfg.RoutesFile, logger)
	if err != nil {
		return err
	}
	upstreams := splitList(cfg.UpstreamURL)
	for _, u := range upstreams {
		if err := proxy.ValidateUpstream(u); err != nil {
			return &ConfigError{Var: "SCOPEGATE_UPSTREAM_URL", Msg: err.Error()}
		}
	}
	trusted, err := cfg.trustedProxies()
	if err != nil {
		return err
	}
	jwtCfg, err := buildJWT(baseCtx, cfg, logger)
	if err != nil {
		return err
	}
	engine, err := newEngine(engineConfig(cfg, routes, jwtCfg, trusted))
	if err != nil {
		return err
	}
	st, err := openStore(baseCtx, cfg, logger)
	if err != nil {
		return err
	}
	closeStore := func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+5*time.Second)
		defer cancel()
		if err := st.store.Close(ctx); err != nil {
			logger.Error("closing store", slog.String("err", err.Error()))
		}
	}

	buckets, err := openBuckets(cfg, logger, engine)
	if err != nil {
		closeStore()
		return err
	}
	if buckets.close != nil {
		defer buckets.close()
	}

	con := newConsole(cfg, engine, st, buckets)
	p, err := proxy.New(proxy.Config{
		Logger:               logger,
		LogAllowed:           cfg.LogAllowed,
		AuthPath:             cfg.AuthPath,
		IdentityHeaderPrefix: cfg.IdentityHeaderPrefix,
		StripCredentials:     cfg.StripCredentials,
		APIKeyHeader:         cfg.APIKeyHeader,
		JWTCookie:            cfg.JWTCookie,
		Upstreams:            upstreams,
		UpstreamTimeout:      cfg.UpstreamTimeout,
		UpstreamIdleTimeout:  cfg.UpstreamIdleTimeout,
		TunnelIdleTimeout:    cfg.TunnelIdleTimeout,
		MaxTunnels:           cfg.MaxTunnels,
		BaseContext:          baseCtx,
		MaxHeaderBytes:       cfg.MaxHeaderBytes,
		MaxBodyBytes:         cfg.MaxBodyBytes,
		ReadTimeout:          cfg.ReadTimeout,
		WriteTimeout:         cfg.WriteTimeout,
		IdleTimeout:          cfg.IdleTimeout,
		MaxConns:             cfg.MaxConns,
		ExtraMetrics:         append(append(st.metrics, buckets.metrics...), buildInfo()),
		AdminToken:           cfg.AdminToken,
	}, proxy.Deps{Engine: engine, Store: st.store, UserSync: st.users, Buckets: buckets.buckets, Console: con})
	if err != nil {
		closeStore()
		return &ConfigError{Var: "SCOPEGATE_AUTH_PATH", Msg: err.Error()}
	}
	warnRisky(logger, cfg, trusted, jwtCfg.Keys == nil && len(jwtCfg.HS256Secret) == 0, len(upstreams) == 0)

	l, err := listen(cfg)
	if err != nil {
		closeStore()
		return err
	}
	g := &servers{p: p, srv: p.NewServer(), admin: p.NewAdminServer(), l: l, con: con}
	if l.grpc != nil {
		g.grpc = extauthz.New(p, extauthz.Config{})
	}
	errc := g.start(cfg)
	grpcAddr := ""
	if l.grpc != nil {
		grpcAddr = l.grpc.Addr().String()
	}
	logger.Info("serving", slog.String("listen_addr", l.traffic.Addr().String()), slog.String("admin_addr", l.admin.Addr().String()),
		slog.String("grpc_addr", grpcAddr),
		slog.Int("upstreams", len(upstreams)), slog.String("auth_path", cfg.AuthPath), slog.Bool("tls", cfg.TLSCertFile != ""))
	if started != nil {
		started(l.traffic.Addr(), l.admin.Addr())
	}
	go sweepRateLimits(baseCtx, engine)

	var serveErr error
loop:
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(cfg, logger, engine, st)
				continue
			}
			logger.Info("shutting down", slog.String("signal", sig.String()), slog.Duration("timeout", cfg.ShutdownTimeout))
			break loop
		case err := <-errc:
			serveErr = err
			logger.Error("listener stopped", slog.String("err", fmt.Sprint(err)))
			break loop
		}
	}

	// Stop accepting, finish in-flight requests (bounded), then flush
	// last_used_at and close the pool.
	g.drain(cfg.ShutdownTimeout, logger)
	cancelBase()
	closeStore()
	logger.Info("stopped")
	if serveErr != nil && !errors.Is(serveErr, net.ErrClosed) {
		return serveErr
	}
	return nil
}

// warnRisky logs one warning for each setting that serves but weakens or
// narrows what the gateway does.
func warnRisky(logger *slog.Logger, cfg *Config, trusted []netip.Prefix, noJWTKeys, noUpstream bool) {
	for _, pfx := range trusted {
		if pfx.Bits() == 0 {
			logger.Warn("SCOPEGATE_TRUSTED_PROXIES trusts every peer: any client can set X-Forwarded-For and call the forward-auth endpoint", slog.String("prefix", pfx.String()))
		}
	}
	if noJWTKeys {
		logger.Warn("no JWT keys configured (SCOPEGATE_JWT_JWKS_URL, SCOPEGATE_JWT_ISSUER, SCOPEGATE_JWT_HS256_SECRET): every JWT is token_invalid")
	}
	if noUpstream {
		logger.Warn("SCOPEGATE_UPSTREAM_URL is empty: forward-auth and decision-only mode, nothing is proxied")
	}
	if !cfg.StripCredentials {
		logger.Warn("SCOPEGATE_STRIP_CREDENTIALS=false: API keys are forwarded to the upstream")
	}
}

// buildInfo is the scopegate_build_info gauge: always 1, labelled with the
// version and the Go release, so a dashboard can tell replicas apart during
// a rollout.
func buildInfo() *metrics.Set {
	s := metrics.NewSet()
	s.GetOrCreateGauge(fmt.Sprintf(`scopegate_build_info{version=%q,goversion=%q}`, version, runtime.Version()), func() float64 { return 1 })
	return s
}

// engineConfig is the policy configuration serve decides with (explain
// adds its tracer to it).
func engineConfig(cfg *Config, routes *policy.Routes, jwtCfg policy.JWTConfig, trusted []netip.Prefix) policy.EngineConfig {
	jwtCfg.Profile = policy.ProfileConfig{Enabled: cfg.userSyncOn(), TrustEmail: cfg.UserSyncTrustEmail}
	return policy.EngineConfig{
		Routes:                 routes,
		DefaultRateLimitPerMin: cfg.DefaultRateLimitPerMin,
		JWT:                    jwtCfg,
		TrustedProxies:         trusted,
	}
}

// newEngine builds the engine; its only failure is an unusable JWT
// configuration.
func newEngine(ec policy.EngineConfig) (*policy.Engine, error) {
	e, err := policy.NewEngine(ec)
	if err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_JWT_ALGORITHMS", Msg: err.Error()}
	}
	return e, nil
}

// sweepRateLimits drops idle token buckets every minute so the bucket table
// does not grow with every client ever seen.
func sweepRateLimits(ctx context.Context, engine *policy.Engine) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			engine.SweepRateLimits(now, 10*time.Minute)
		}
	}
}

// loadRoutes reads and compiles SCOPEGATE_ROUTES_FILE ("" : no routes file).
// A bad file is invalid configuration naming the variable.
func loadRoutes(path string, logger *slog.Logger) (*policy.Routes, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_ROUTES_FILE", Msg: err.Error()}
	}
	r, warnings, err := policy.ParseRoutes(data)
	if err != nil {
		return nil, &ConfigError{Var: "SCOPEGATE_ROUTES_FILE", Msg: fmt.Sprintf("%s: %v", path, err)}
	}
	for _, w := range warnings {
		logger.Warn("routes file warning", slog.String("file", path), slog.Int("line", w.Line), slog.String("msg", w.Msg))
	}
	return r, nil
}

// reload re-reads the routes file and the store (SIGHUP). A bad routes file
// is rejected and the old rules stay.
func reload(cfg *Config, logger *slog.Logger, engine *policy.Engine, st *openedStore) {
	if cfg.RoutesFile != "" {
		r, err := loadRoutes(cfg.RoutesFile, logger)
		if err != nil {
			logger.Error("routes reload rejected; the previous rules stay", slog.String("file", cfg.RoutesFile), slog.String("err", err.Error()))
		} else {
			engine.SetRoutes(r)
			logger.Info("routes reloaded", slog.String("file", cfg.RoutesFile))
		}
	}
	if rl, ok := st.store.(interface{ Reload() error }); ok {
		if err := rl.Reload(); err != nil {
			logger.Error("store reload rejected; the previous data stays", slog.String("err", err.Error()))
		} else {
			logger.Info("store reloaded")
		}
	}
}

// listenError is a listener serve could not open: which variable named the
// address, the address, and why.
type listenError struct {
	Var, Addr string
	Err       error
}

func (e *listenError) Error() string {
	return fmt.Sprintf("listening on %s %s: %v", e.Var, e.Addr, e.Err)
}

func (e *listenError) Unwrap() error { return e.Err }
