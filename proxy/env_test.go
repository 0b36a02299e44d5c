package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/console"
	"github.com/scopegate/scopegate/store"
)

// testRoutes is the routes file of the handler tests: the SPEC §4 shapes
// over the storetest.Basic fixture.
const testRoutes = `
default: deny
action_by_method: {GET: view, HEAD: view, POST: create, PUT: update, PATCH: update, DELETE: delete}
superuser_actions: [manage]
routes:
  - path: /healthz
    auth: none
  - path: /api/companies/{company}/sites/{site}/**
    module: inventory
    scope: site:{site}
  - path: /api/companies/{company}/**
    methods: [GET]
    module: billing
    action: view
    scope: company:{company}
  - path: /api/legacy/**
    module: legacy
    scope: company:header:X-Company-Key
  - path: /api/ghost/**
    module: ghost
    scope: any
  - path: /api/stock/**
    module: inventory
    scope: site:query:site
  - path: /api/me
    auth: [jwt]
  - path: /api/**
  - path: /files/{name}/**
    allow_encoded_slash: true
`

const testHS256Secret = "test-hs256-secret-of-at-least-32-bytes!!"

// Peers: 127.0.0.1 is a direct (untrusted) client, 127.0.0.2 the trusted
// proxy (nginx, Traefik or Envoy in front).
var (
	directPeer  = netip.MustParseAddr("127.0.0.1")
	trustedPeer = netip.MustParseAddr("127.0.0.2")
)

// envOptions tune newEnv.
type envOptions struct {
	store           Store // nil: the file store of storetest.Basic
	upstreams       []string
	noUpstream      bool
	upstreamTimeout time.Duration
	trusted         []netip.Prefix // nil: 127.0.0.2/32
	routes          string         // "": testRoutes; "-": no routes file
	mutate          func(*Config)
	listen          string                   // "": 127.0.0.1:0
	fixture         func(*storetest.Fixture) // edits storetest.Basic before the file store opens
	userSync        UserSyncer               // nil: user sync off; else the engine maps profiles too
	noConsole       bool                     // no operator-page counters (they are on by default)
}

// env is a running gateway on a loopback socket with an echo upstream.
type env struct {
	t        testing.TB
	fix      storetest.Fixture
	proxy    *Proxy
	engine   *policy.Engine
	addr     string // gateway host:port
	upstream *echoUpstream
	store    Store
	console  *console.Console // nil with noConsole
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, fix: storetest.Basic()}
	if o.fixture != nil {
		o.fixture(&e.fix)
	}
	if o.store == nil {
		o.store = openFileStore(t, e.fix)
	}
	e.store = o.store
	var routes *policy.Routes
	switch o.routes {
	case "-":
	case "":
		o.routes = testRoutes
		fallthrough
	default:
		r, _, err := policy.ParseRoutes([]byte(o.routes))
		if err != nil {
			t.Fatalf("ParseRoutes: %v", err)
		}
		routes = r
	}
	if o.trusted == nil {
		o.trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	}
	eng, err := policy.NewEngine(policy.EngineConfig{
		Routes:         routes,
		TrustedProxies: o.trusted,
		JWT: policy.JWTConfig{HS256Secret: []byte(testHS256Secret), Algorithms: []string{"HS256"},
			Profile: policy.ProfileConfig{Enabled: o.userSync != nil}},
	})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	e.engine = eng
	if !o.noUpstream && o.upstreams == nil {
		e.upstream = startEcho(t)
		o.upstreams = []string{"http://" + e.upstream.addr}
	}
	cfg := Config{
		Logger:           testLogger(t),
		StripCredentials: true,
		JWTCookie:        "sg_session",
		Upstreams:        o.upstreams,
		UpstreamTimeout:  o.upstreamTimeout,
		MaxHeaderBytes:   8 << 10,
		MaxBodyBytes:     1 << 20,
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	deps := Deps{Engine: eng, Store: o.store, UserSync: o.userSync}
	if !o.noConsole {
		view, _ := o.store.(console.StoreView)
		deps.Console = console.New(console.Config{Store: view, Routes: eng, StoreKind: "test"})
		e.console = deps.Console
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.proxy = p
	listen := o.listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil && o.listen != "" {
		t.Skipf("cannot listen on %s: %v", listen, err) // an address this machine may lack (IPv6)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := p.NewServer()
	done := make(chan struct{})
	go func() { _ = srv.Serve(p.Listener(ln)); close(done) }()
	t.Cleanup(func() {
		// Shutdown only closes listeners Serve has registered: when it runs
		// before the goroutine above got that far, Serve would then accept
		// forever. Closing ln as well ends Serve either way.
		_ = srv.Shutdown()
		_ = ln.Close()
		<-done
	})
	e.addr = ln.Addr().String()
	return e
}

// startAdmin serves e's admin listener on a loopback port until the test
// ends and returns its base URL.
func (e *env) startAdmin(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := e.proxy.NewAdminServer()
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Shutdown(); _ = ln.Close() })
	return "http://" + ln.Addr().String()
}

// openFileStore writes f as a declarative store file and opens it.
func openFileStore(t testing.TB, f storetest.Fixture) *store.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.yaml")
	if err := os.WriteFile(path, f.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenFile(path, store.FileConfig{NoWatch: true})
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// testLogger logs through t with -v (discards otherwise). A fuzz target's
// *testing.F may not log once fuzzing runs, so its logs are discarded.
func testLogger(t testing.TB) *slog.Logger {
	if _, fuzz := t.(*testing.F); testing.Verbose() && !fuzz {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// jwtFor signs an HS256 token for sub with the given lifetime.
func jwtFor(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	s, err := tok.SignedString([]byte(testHS256Secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawResponse is what a raw request got back.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	close  bool // the server announced Connection: close
	// framing as sent: Transfer-Encoding codings (net/http takes them out
	// of header) and the declared Content-Length (-1: none)
	te     []string
	length int64
}

func (r *rawResponse) reason() string {
	var v struct {
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(r.body, &v)
	return v.Reason
}

// do sends a raw HTTP/1.1 request text from peer to the gateway and reads
// one response. The request text must end its headers with "\r\n\r\n".
func (e *env) do(peer netip.Addr, raw string) *rawResponse {
	e.t.Helper()
	return doRaw(e.t, peer, e.addr, raw)
}

// halfClose, at the end of a raw request, makes doRaw close its sending
// side after writing the rest (a client that goes away mid-body).
const halfClose = "\x00half-close"

func doRaw(t testing.TB, peer netip.Addr, addr, raw string) *rawResponse {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if peer.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: peer.AsSlice()}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, peer, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	raw, closeWrite := strings.CutSuffix(raw, halfClose)
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	if closeWrite {
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode == http.StatusContinue {
		resp, err = http.ReadResponse(br, nil) // skip 100 Continue
	}
	if err != nil {
		t.Fatalf("read response to %q: %v", firstLine(raw), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &rawResponse{status: resp.StatusCode, header: resp.Header, body: body, close: resp.Close,
		te: resp.TransferEncoding, length: resp.ContentLength}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\r'); i >= 0 {
		return s[:i]
	}
	return s
}

// get builds a GET request text with headers (name, value pairs).
func reqText(method, target string, headers ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: gw.test\r\n")
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i] + ": " + headers[i+1] + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// echoUpstream answers every request with a JSON description of what it
// received: method, raw request URI, headers (all values), body length.
// /slow waits 2 s first.
type echoUpstream struct {
	addr string
	srv  *fasthttp.Server
}

type echoed struct {
	Method     string              `json:"method"`
	RequestURI string              `json:"request_uri"`
	Headers    map[string][]string `json:"headers"`
	BodyLen    int                 `json:"body_len"`
	Host       string              `json:"host"`
}

func startEcho(t testing.TB) *echoUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &echoUpstream{addr: ln.Addr().String()}
	u.srv = &fasthttp.Server{
		DisableHeaderNamesNormalizing: true,
		Handler: func(ctx *fasthttp.RequestCtx) {
			if bytes.HasPrefix(ctx.Request.Header.RequestURI(), []byte("/api/slow")) {
				time.Sleep(2 * time.Second)
			}
			e := echoed{
				Method:     string(ctx.Method()),
				RequestURI: string(ctx.Request.Header.RequestURI()),
				Headers:    map[string][]string{},
				BodyLen:    len(ctx.Request.Body()),
				Host:       string(ctx.Request.Header.Host()),
			}
			for k, v := range ctx.Request.Header.All() {
				key := http.CanonicalHeaderKey(string(k))
				e.Headers[key] = append(e.Headers[key], string(v))
			}
			ctx.Response.Header.Set("X-Upstream", "echo")
			ctx.Response.Header.Set("X-Upstream-Addr", u.addr)
			ctx.Response.Header.Set("Keep-Alive", "timeout=5")
			if bytes.HasPrefix(ctx.Request.Header.RequestURI(), []byte("/api/hop")) {
				// Hop-by-hop fields in the lower case some upstreams send.
				for _, kv := range [][2]string{
					{"keep-alive", "timeout=7"}, {"proxy-authenticate", "Basic"}, {"te", "trailers"},
					{"upgrade", "h2c"}, {"connection", "x-private-hop"}, {"x-private-hop", "1"},
					{"proxy-connection", "keep-alive"}, {"x-request-id", "upstream-chosen"},
					{"ratelimit-remaining", "999"},
				} {
					ctx.Response.Header.Add(kv[0], kv[1])
				}
			}
			ctx.SetContentType("application/json")
			b, _ := json.Marshal(e)
			ctx.SetBody(b)
		},
	}
	done := make(chan struct{})
	go func() { _ = u.srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = u.srv.Shutdown(); _ = ln.Close(); <-done })
	return u
}

// echoOf decodes the upstream's echo from a proxied response.
func echoOf(t testing.TB, r *rawResponse) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("not an upstream echo (status %d): %s", r.status, r.body)
	}
	return e
}

func (e echoed) header(name string) string {
	v := e.Headers[http.CanonicalHeaderKey(name)]
	if len(v) == 0 {
		return ""
	}
	return strings.Join(v, ", ")
}
