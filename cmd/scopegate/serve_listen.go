package main

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/proxy"
	"github.com/scopegate/scopegate/proxy/console"
	"github.com/scopegate/scopegate/proxy/extauthz"
)

// listeners are serve's bound sockets: traffic, admin, and gRPC when
// SCOPEGATE_GRPC_ADDR is set (nil otherwise).
type listeners struct {
	traffic, admin, grpc net.Listener
}

// listen binds every configured listener or none: a failure closes those
// already bound and names the variable whose address failed.
func listen(cfg *Config) (*listeners, error) {
	l := &listeners{}
	for _, b := range []struct {
		dst      *net.Listener
		name     string
		addr     string
		optional bool
	}{
		{&l.traffic, "SCOPEGATE_LISTEN_ADDR", cfg.ListenAddr, false},
		{&l.admin, "SCOPEGATE_ADMIN_ADDR", cfg.AdminAddr, false},
		{&l.grpc, "SCOPEGATE_GRPC_ADDR", cfg.GRPCAddr, true},
	} {
		if b.optional && b.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			l.close()
			return nil, &listenError{Var: b.name, Addr: b.addr, Err: err}
		}
		*b.dst = ln
	}
	return l, nil
}

// close closes every bound listener. Shutdown closes only the listeners
// Serve has registered: a signal that arrives before Serve got that far
// would leave one open.
func (l *listeners) close() {
	for _, ln := range []net.Listener{l.traffic, l.admin, l.grpc} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// servers are what serve runs on its listeners.
type servers struct {
	p     *proxy.Proxy
	srv   *fasthttp.Server // traffic
	admin *fasthttp.Server
	grpc  *extauthz.Server // nil without SCOPEGATE_GRPC_ADDR
	l     *listeners
	con   *console.Console
}

// start serves every listener in its own goroutine; the channel receives
// the error of the first that stops.
func (g *servers) start(cfg *Config) <-chan error {
	errc := make(chan error, 3)
	go func() {
		// Coarse deadlines under TLS (proxy.Proxy.Listener).
		ln := g.p.Listener(g.l.traffic)
		if cfg.TLSCertFile != "" {
			errc <- g.srv.ServeTLS(ln, cfg.TLSCertFile, cfg.TLSKeyFile)
			return
		}
		errc <- g.srv.Serve(ln)
	}()
	go func() { errc <- g.admin.Serve(g.l.admin) }()
	if g.grpc != nil {
		go func() { errc <- g.grpc.Serve(g.l.grpc) }()
	}
	return errc
}

// drain stops accepting and finishes in-flight requests and gRPC checks
// within timeout (/readyz fails meanwhile, gRPC health answers
// NOT_SERVING), then closes the upgrade tunnels, the denial streams and
// the admin listener.
func (g *servers) drain(timeout time.Duration, logger *slog.Logger) {
	g.p.SetRulesLoaded(false)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	grpcDrained := make(chan bool, 1)
	if g.grpc != nil {
		go func() { grpcDrained <- g.grpc.Stop(ctx) }()
	} else {
		grpcDrained <- true
	}
	drainErr := g.srv.ShutdownWithContext(ctx)
	if !<-grpcDrained {
		logger.Warn("shutdown timeout: in-flight gRPC checks cut")
	}
	cancel()
	// Upgrade tunnels (hijacked, so not waited for by the drain) close
	// once the HTTP requests have drained.
	g.p.CloseTunnels()
	_ = g.l.traffic.Close() // see close
	if drainErr != nil {
		logger.Warn("shutdown timeout: in-flight requests cut", slog.String("err", drainErr.Error()))
	}
	g.con.Close() // ends the open denial streams, which the admin server waits for
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	_ = g.admin.ShutdownWithContext(actx)
	acancel()
	g.l.close()
}
