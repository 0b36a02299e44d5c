package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/proxy"
)

// freeAddr returns a free loopback address.
func freeAddr() string {
	port, err := testproc.Port()
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// upstreamBody is the fixed small answer of the benchmark upstream.
var upstreamBody = []byte(`{"ok":true}`)

// upstreamEnv names the variable that turns this binary (or the test binary)
// into the benchmark upstream child.
const upstreamEnv = "SCOPEGATE_BENCH_SERVE_UPSTREAM"

// bareProxyEnv and safeProxyEnv name the variables ("listen,upstream")
// that turn this binary into a reference fasthttp reverse proxy child:
// serveBareProxy and serveSafeProxy.
const (
	bareProxyEnv = "SCOPEGATE_BENCH_SERVE_BAREPROXY"
	safeProxyEnv = "SCOPEGATE_BENCH_SERVE_SAFEPROXY"
)

// bareAuthEnv names the variable (a listen address) that turns this binary
// into the reference forward-auth answer child.
const bareAuthEnv = "SCOPEGATE_BENCH_SERVE_BAREAUTH"

// maybeServeUpstream serves the upstream (or a reference server) and exits
// when this process was started as that child.
func maybeServeUpstream() {
	var err error
	if addr := os.Getenv(upstreamEnv); addr != "" {
		err = serveUpstream(addr)
	} else if spec := os.Getenv(bareProxyEnv); spec != "" {
		listen, up, _ := strings.Cut(spec, ",")
		err = serveBareProxy(listen, up)
	} else if spec := os.Getenv(safeProxyEnv); spec != "" {
		listen, up, _ := strings.Cut(spec, ",")
		err = serveSafeProxy(listen, up)
	} else if addr := os.Getenv(bareAuthEnv); addr != "" {
		err = serveBareAuth(addr)
	} else {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveUpstream runs the benchmark upstream in this process until killed: a
// hello-world fasthttp service.
func serveUpstream(addr string) error {
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(upstreamBody)
		},
		DisableHeaderNamesNormalizing: true,
	}
	return s.ListenAndServe(addr)
}

// serveBareProxy runs the reference for the proxy scenarios: the smallest
// fasthttp reverse proxy (a fasthttp.Server whose handler is HostClient.Do),
// with no decision, no header hygiene and no timeouts. It shows what the
// library itself costs on this machine, so a gap between it and
// proxy-public is scopegate's own.
func serveBareProxy(listen, upstream string) error {
	hc := &fasthttp.HostClient{Addr: upstream, MaxConns: 4096, DisablePathNormalizing: true}
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error(err.Error(), fasthttp.StatusBadGateway)
			}
		},
		DisableHeaderNamesNormalizing: true,
	}
	return s.ListenAndServe(listen)
}

// serveSafeProxy runs the second reference of the proxy scenarios: a
// fasthttp reverse proxy built from scopegate's own listener settings
// (proxy.Config.ListenerServer: read, write and idle timeouts, request body
// streaming, header-name normalization) and upstream client
// (proxy.Config.UpstreamClient: a deadline renewed before every read and
// write, an answer read whole when it came whole, any other streamed back), with no decision, header hygiene or forwarded fields. The
// gap between fasthttp-proxy and it is what those settings cost; the gap
// between it and proxy-public is scopegate's own work.
func serveSafeProxy(listen, upstream string) error {
	var cfg proxy.Config
	hc, err := cfg.UpstreamClient("http://" + upstream)
	if err != nil {
		return err
	}
	s := cfg.ListenerServer(func(ctx *fasthttp.RequestCtx) {
		if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
		}
	})
	return s.ListenAndServe(listen)
}

// serveBareAuth runs the reference of the forward-auth scenario: a fasthttp
// server with scopegate's listener settings (proxy.Config.ListenerServer)
// that answers every request with scopegate's 200 allow of an API key (the
// same header fields and sizes) without looking at the request. It is what a
// forward-auth answer costs on this machine when the decision is free, so
// the gap between it and forward-auth is the decision's.
func serveBareAuth(addr string) error {
	fields := [][2]string{
		{"X-Request-Id", "d58248e584782828-1"},
		{"Cache-Control", "no-store"},
		{"X-Auth-Type", "api_key"},
		{"X-Auth-Client-Id", fixtureID(5, 1)},
		{"X-Auth-Client-Key", clientKey(1)},
	}
	s := proxy.Config{}.ListenerServer(func(ctx *fasthttp.RequestCtx) {
		for _, f := range fields {
			ctx.Response.Header.Set(f[0], f[1])
		}
	})
	return s.ListenAndServe(addr)
}

// startChild runs this binary as a child process with one more environment
// variable and waits until url answers 200.
func startChild(ctx context.Context, dir, name, envVar, value, url string) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := start(dir, name, self, nil, append(os.Environ(), envVar+"="+value))
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, url, 10*time.Second, p); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startUpstream runs the upstream as a child process (this binary with
// SCOPEGATE_BENCH_SERVE_UPSTREAM set), so its CPU is not mixed with the load generator's and
// the `direct` scenario can report what a hello-world answer costs.
func startUpstream(ctx context.Context, dir string) (addr string, p *process, err error) {
	addr = freeAddr()
	p, err = startChild(ctx, dir, "upstream", upstreamEnv, addr, "http://"+addr+"/")
	return addr, p, err
}

// startProxyChild runs a reference fasthttp proxy in front of upstream as a
// child process: serveBareProxy (bareProxyEnv) or serveSafeProxy
// (safeProxyEnv).
func startProxyChild(ctx context.Context, dir, name, envVar, upstream string) (addr string, p *process, err error) {
	addr = freeAddr()
	p, err = startChild(ctx, dir, name, envVar, addr+","+upstream, "http://"+addr+"/")
	return addr, p, err
}

// startBareAuth runs the reference forward-auth answer (serveBareAuth) as a
// child process.
func startBareAuth(ctx context.Context, dir string) (addr string, p *process, err error) {
	addr = freeAddr()
	p, err = startChild(ctx, dir, "bare-auth", bareAuthEnv, addr, "http://"+addr+"/")
	return addr, p, err
}

// process is a child process the bench started; stop ends it by its PID.
type process struct {
	*testproc.Proc
	admin string // a gateway's admin address (its /metrics), if any
}

// start runs bin with args and env, its output to a log file in dir, in a
// process group of its own.
func start(dir, name, bin string, args, env []string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := testproc.Start(name, cmd, filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	return &process{Proc: p}, nil
}

// stop sends SIGTERM to the process and, after 10 s, SIGKILL. A nil p is
// left alone.
func (p *process) stop() {
	if p != nil {
		p.Stop(syscall.SIGTERM, 10*time.Second)
	}
}

// waitHTTP polls url until it answers 200 or the timeout passes; it gives
// up early when p (which may be nil) exits.
func waitHTTP(ctx context.Context, url string, timeout time.Duration, p *process) error {
	var proc *testproc.Proc
	name := "server"
	if p != nil {
		proc, name = p.Proc, p.Name
	}
	err := testproc.Wait(ctx, proc, timeout, 100*time.Millisecond, func() error {
		status, _, err := fasthttp.GetTimeout(nil, url, time.Second)
		if err == nil && status != 200 {
			err = fmt.Errorf("status %d", status)
		}
		return err
	})
	if err == nil || ctx.Err() != nil {
		return err
	}
	log := ""
	if proc != nil {
		log = "\n" + proc.Output(2000)
	}
	return fmt.Errorf("%s did not become ready at %s (%v)%s", name, url, err, log)
}

// findNginx returns the nginx binary, "" when it is not installed.
func findNginx() string {
	return testproc.Find([]string{"nginx"}, "/usr/sbin/nginx")
}

// nginxConf renders the two nginx front ends of the benchmark: a plain
// proxy_pass (nginx-proxy) and auth_request to scopegate's /_auth before the
// upstream (nginx-auth-request), the same shape as configs/nginx/.
func nginxConf(dir, proxyAddr, authReqAddr, upstream, gateway string) string {
	return fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream app { server %[4]s; keepalive 256; }
    upstream scopegate { server %[5]s; keepalive 256; }
    server {
        listen %[2]s;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen %[3]s;
        location = /_auth {
            internal;
            proxy_pass http://scopegate/_auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }
        location / {
            auth_request /_auth;
            auth_request_set $auth_type $upstream_http_x_auth_type;
            auth_request_set $auth_client $upstream_http_x_auth_client_id;
            proxy_set_header X-Auth-Type $auth_type;
            proxy_set_header X-Auth-Client-Id $auth_client;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, dir, proxyAddr, authReqAddr, upstream, gateway)
}
