package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/scopegate/scopegate/internal/syncbuf"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/proxy/extauthz"
)

// grpcEnv is a gateway's gRPC ext_authz listener on a loopback socket.
type grpcEnv struct {
	addr string
	srv  *extauthz.Server
}

// startGRPC serves e's proxy over gRPC on 127.0.0.1:0 until the test ends.
func startGRPC(t testing.TB, e *env) *grpcEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcEnv{addr: ln.Addr().String(), srv: extauthz.New(e.proxy, extauthz.Config{})}
	done := make(chan error, 1)
	go func() { done <- g.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.srv.Stop(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return g
}

// conn opens a client connection to g from the local address peer (so the
// gateway sees that peer), built from the official protos' stubs.
func (g *grpcEnv) conn(t testing.TB, peer netip.Addr) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+g.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: peer.AsSlice()}}
			return d.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// checkRequest builds the CheckRequest Envoy sends for a client request:
// headers as a header_map (repeated names kept apart, as on the wire).
func checkRequest(method, path, source string, headers ...string) *authv3.CheckRequest {
	hm := &corev3.HeaderMap{}
	for i := 0; i+1 < len(headers); i += 2 {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: strings.ToLower(headers[i]), Value: headers[i+1]})
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 50000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path, Host: "gw.test", Scheme: "http", Protocol: "HTTP/1.1", HeaderMap: hm,
		}},
	}}
}

// rawOf turns a CheckResponse into the answer the client (or, allowed, the
// upstream) would see, so the HTTP form's checks apply: a DeniedResponse's
// status, headers and body; an OkResponse as a 200 whose headers are those
// set on the upstream request and those added to the client's answer.
func rawOf(t testing.TB, resp *authv3.CheckResponse) *rawResponse {
	t.Helper()
	r := &rawResponse{header: http.Header{}}
	add := func(opts []*corev3.HeaderValueOption) {
		for _, o := range opts {
			if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("header %s: append action %v, want OVERWRITE_IF_EXISTS_OR_ADD", o.GetHeader().GetKey(), o.GetAppendAction())
			}
			r.header.Add(o.GetHeader().GetKey(), o.GetHeader().GetValue())
		}
	}
	switch hr := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Errorf("OkResponse with status %v", resp.GetStatus())
		}
		r.status = 200
		add(hr.OkResponse.GetHeaders())
		add(hr.OkResponse.GetResponseHeadersToAdd())
	case *authv3.CheckResponse_DeniedResponse:
		if resp.GetStatus().GetCode() == int32(codes.OK) {
			t.Errorf("DeniedResponse with status OK")
		}
		r.status = int(hr.DeniedResponse.GetStatus().GetCode())
		add(hr.DeniedResponse.GetHeaders())
		r.body = []byte(hr.DeniedResponse.GetBody())
	default:
		t.Fatalf("CheckResponse without an http_response: %v", resp)
	}
	return r
}

// grpcCase sends a reasonCase as Envoy would over gRPC from peer.
func grpcCase(t testing.TB, client authv3.AuthorizationClient, c reasonCase) *authv3.CheckResponse {
	t.Helper()
	method := c.method
	if method == "" {
		method = "GET"
	}
	source := c.clientIP
	if c.xff != "" {
		parts := strings.Split(c.xff, ",")
		source = strings.TrimSpace(parts[len(parts)-1])
	}
	if source == "" {
		source = "127.0.0.1"
	}
	resp, err := client.Check(context.Background(), checkRequest(method, c.target, source, c.headers...))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// TestGRPCReasonCodes runs the reason-code table through both Envoy
// transports, the HTTP /_auth/envoy and the gRPC Check, and checks each
// answer against the table and against the other transport: same status,
// reason, identity headers and rate-limit headers.
func TestGRPCReasonCodes(t *testing.T) {
	e := newEnv(t, envOptions{noUpstream: true})
	client := authv3.NewAuthorizationClient(startGRPC(t, e).conn(t, trustedPeer))
	for _, c := range reasonCases(t, e) {
		t.Run(c.name, func(t *testing.T) {
			hr := e.send(c, "envoy")
			check(t, c, "envoy", hr, e)
			gr := rawOf(t, grpcCase(t, client, c))
			check(t, c, "grpc", gr, e)
			sameOutcome(t, hr, gr)
		})
	}
}

// sameOutcome compares the HTTP and gRPC answers to one request.
func sameOutcome(t *testing.T, hr, gr *rawResponse) {
	t.Helper()
	if hr.status != gr.status || hr.reason() != gr.reason() {
		t.Errorf("HTTP %d %q, gRPC %d %q", hr.status, hr.reason(), gr.status, gr.reason())
	}
	for _, k := range append(identityNames, "RateLimit", "RateLimit-Policy", "RateLimit-Limit", "RateLimit-Remaining",
		"Retry-After", "WWW-Authenticate", "X-Scopegate-Reason", "Access-Control-Allow-Origin", "Vary") {
		if h, g := hr.header.Get(k), gr.header.Get(k); h != g {
			t.Errorf("%s: HTTP %q, gRPC %q", k, h, g)
		}
	}
	if gr.header.Get("X-Request-Id") == "" {
		t.Error("gRPC answer without X-Request-Id")
	}
}

// TestGRPCMoreReasons: the reasons of the envoy table that need their own
// set-up (rate limit, store down, untrusted peer, CORS), over both
// transports.
func TestGRPCMoreReasons(t *testing.T) {
	fix := newEnv(t, envOptions{noUpstream: true, fixture: addCORSClients()})
	fs := &failingStore{Store: fix.store}
	e := newEnv(t, envOptions{store: fs, noUpstream: true, routes: corsRoutes, fixture: addCORSClients()})
	g := startGRPC(t, e)
	trusted := authv3.NewAuthorizationClient(g.conn(t, trustedPeer))
	direct := authv3.NewAuthorizationClient(g.conn(t, directPeer))
	tok := e.fix.Token("browser") // rate limit 2 per minute
	both := func(t *testing.T, c reasonCase) (*rawResponse, *rawResponse) {
		t.Helper()
		h := append([]string(nil), c.headers...)
		hr := e.do(trustedPeer, reqText(c.method, "/_auth/envoy"+c.target, append(h, "X-Forwarded-For", "127.0.0.1")...))
		return hr, rawOf(t, grpcCase(t, trusted, c))
	}

	t.Run("rate_limited with Retry-After and RateLimit headers", func(t *testing.T) {
		c := reasonCase{method: "GET", target: "/api/things", headers: []string{"X-API-Key", tok}}
		hr, gr := both(t, c) // one token each
		if hr.status != 200 || gr.status != 200 || hr.header.Get("RateLimit-Remaining") != "1" || gr.header.Get("RateLimit-Remaining") != "0" {
			t.Fatalf("HTTP %d %v, gRPC %d %v", hr.status, hr.header, gr.status, gr.header)
		}
		hr, gr = both(t, c)
		if gr.status != 429 || gr.reason() != "rate_limited" {
			t.Fatalf("gRPC %d %s", gr.status, gr.body)
		}
		if gr.header.Get("Retry-After") == "" || gr.header.Get("RateLimit-Remaining") != "0" || gr.header.Get("RateLimit-Policy") != `"per-minute";q=2;w=60` {
			t.Errorf("gRPC 429 headers: %v", gr.header)
		}
		sameOutcome(t, hr, gr)
	})
	t.Run("cors_rejected and an allowed preflight", func(t *testing.T) {
		hr, gr := both(t, reasonCase{method: "OPTIONS", target: "/api/things", headers: []string{"Origin", "https://evil.test", "Access-Control-Request-Method", "GET"}})
		if gr.status != 403 || gr.reason() != "cors_rejected" {
			t.Fatalf("gRPC %d %s", gr.status, gr.body)
		}
		sameOutcome(t, hr, gr)
		hr, gr = both(t, reasonCase{method: "OPTIONS", target: "/api/things", headers: []string{"Origin", corsOrigin, "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "x-api-key"}})
		if gr.status != 204 || gr.header.Get("Access-Control-Allow-Origin") != corsOrigin || gr.header.Get("Access-Control-Allow-Methods") == "" {
			t.Fatalf("gRPC preflight %d %v", gr.status, gr.header)
		}
		sameOutcome(t, hr, gr)
	})
	t.Run("CORS headers on an allowed check go to the client", func(t *testing.T) {
		resp := grpcCase(t, trusted, reasonCase{target: "/api/things", headers: []string{"Origin", corsOrigin, "X-API-Key", e.fix.Token("app")}})
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("not allowed: %v", resp)
		}
		found := false
		for _, o := range ok.GetResponseHeadersToAdd() {
			found = found || (o.GetHeader().GetKey() == "Access-Control-Allow-Origin" && o.GetHeader().GetValue() == corsOrigin)
		}
		for _, o := range ok.GetHeaders() {
			if strings.HasPrefix(o.GetHeader().GetKey(), "Access-Control") {
				t.Errorf("CORS header %s set on the upstream request", o.GetHeader().GetKey())
			}
		}
		if !found {
			t.Errorf("response_headers_to_add lacks Access-Control-Allow-Origin: %v", ok.GetResponseHeadersToAdd())
		}
	})
	t.Run("forwarded_untrusted", func(t *testing.T) {
		gr := rawOf(t, grpcCase(t, direct, reasonCase{target: "/api/things", headers: []string{"X-API-Key", e.fix.Token("app")}}))
		hr := e.do(directPeer, reqText("GET", "/_auth/envoy/api/things", "X-API-Key", e.fix.Token("app")))
		if gr.status != 403 || gr.reason() != "forwarded_untrusted" {
			t.Fatalf("gRPC %d %s", gr.status, gr.body)
		}
		sameOutcome(t, hr, gr)
	})
	t.Run("store_unavailable", func(t *testing.T) {
		fs.down.Store(true)
		defer fs.down.Store(false)
		hr, gr := both(t, reasonCase{method: "GET", target: "/api/things", headers: []string{"X-API-Key", e.fix.Token("app")}})
		if gr.status != 503 || gr.reason() != "store_unavailable" {
			t.Fatalf("gRPC %d %s", gr.status, gr.body)
		}
		sameOutcome(t, hr, gr)
	})
}

// TestGRPCInputs: malformed or unusual checks get the contract's answer and
// never an allow: missing attributes, paths with a query or a fragment, an
// invalid UTF-8 path, huge header maps, the headers map form, and the
// client's prefixed headers listed for removal.
func TestGRPCInputs(t *testing.T) {
	e := newEnv(t, envOptions{noUpstream: true})
	g := startGRPC(t, e)
	client := authv3.NewAuthorizationClient(g.conn(t, trustedPeer))
	app := e.fix.Token("app")
	withSource := func(r *authv3.CheckRequest, src *authv3.AttributeContext_Peer) *authv3.CheckRequest {
		r.Attributes.Source = src
		return r
	}
	noMethod := checkRequest("", "/api/things", "127.0.0.1", "X-API-Key", app)
	relPath := checkRequest("GET", "api/things", "127.0.0.1", "X-API-Key", app)
	star := checkRequest("OPTIONS", "*", "127.0.0.1", "X-API-Key", app)
	query := checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", app)
	query.Attributes.Request.Http.Query = "page=2"
	frag := checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", app)
	frag.Attributes.Request.Http.Fragment = "/../../admin"
	mapForm := checkRequest("GET", "/api/things?x=1", "127.0.0.1")
	mapForm.Attributes.Request.Http.HeaderMap = nil
	mapForm.Attributes.Request.Http.Headers = map[string]string{"x-api-key": app, ":path": "/other", "x-forwarded-for": "10.9.9.9"}
	pipe := checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", app)
	pipe.Attributes.Source.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/s"}}}
	many := make([]string, 0, 40000)
	for i := 0; i < 20000; i++ {
		many = append(many, "x-h"+string(rune('a'+i%26))+strings.Repeat("b", i%7), "v")
	}
	huge := checkRequest("GET", "/api/things", "127.0.0.1", append([]string{"X-API-Key", app}, many...)...)
	nearLimit := checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", app, "X-Pad", strings.Repeat("p", 6<<10))

	cases := []struct {
		name   string
		req    *authv3.CheckRequest
		status int
		reason string
	}{
		{"no attributes", &authv3.CheckRequest{}, 403, "forwarded_invalid"},
		{"no http request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, 403, "forwarded_invalid"},
		{"no source", withSource(checkRequest("GET", "/api/things", "", "X-API-Key", app), nil), 403, "forwarded_invalid"},
		{"source not an address", checkRequest("GET", "/api/things", "not-an-ip", "X-API-Key", app), 403, "forwarded_invalid"},
		{"source a pipe", pipe, 403, "forwarded_invalid"},
		{"no method", noMethod, 403, "forwarded_invalid"},
		{"relative path", relPath, 403, "forwarded_invalid"},
		{"asterisk path", star, 403, "forwarded_invalid"},
		{"path with a query", checkRequest("GET", "/api/things?page=2&api_key=x", "127.0.0.1", "X-API-Key", app), 200, ""},
		{"query in its own field", query, 200, ""},
		{"fragment in its own field", frag, 403, "path_invalid"},
		{"fragment in the path", checkRequest("GET", "/api/things#/../admin", "127.0.0.1", "X-API-Key", app), 403, "path_invalid"},
		{"percent-encoded invalid UTF-8", checkRequest("GET", "/api/%ff%fe", "127.0.0.1", "X-API-Key", app), 403, "path_invalid"},
		{"dot segment", checkRequest("GET", "/api/../admin", "127.0.0.1", "X-API-Key", app), 403, "path_invalid"},
		{"headers map form, pseudo and forwarded fields ignored", mapForm, 200, ""},
		{"huge header map", huge, 431, "bad_request"},
		{"large header just under the limit", nearLimit, 200, ""},
		{"source outside allowed_ips", checkRequest("GET", "/api/things", "192.0.2.1", "X-API-Key", e.fix.Token("office")), 403, "ip_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), c.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			r := rawOf(t, resp)
			if r.status != c.status || r.reason() != c.reason {
				t.Fatalf("status %d body %s, want %d %s", r.status, r.body, c.status, c.reason)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}

	t.Run("client's prefixed headers removed, identity overwritten", func(t *testing.T) {
		resp, err := client.Check(context.Background(), checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", app,
			"X-Auth-Type", "admin", "X-Auth-User-Sub", "root", "x_auth_scope", "company:evil", "X-Auth-Role", "admin", "X-Other", "1"))
		if err != nil {
			t.Fatal(err)
		}
		ok := resp.GetOkResponse()
		if ok == nil {
			t.Fatalf("denied: %v", resp)
		}
		set := map[string]string{}
		for _, o := range ok.GetHeaders() {
			set[o.GetHeader().GetKey()] = o.GetHeader().GetValue()
		}
		if set["X-Auth-Type"] != "api_key" || set["X-Auth-Client-Key"] != "app" || set["X-Request-Id"] == "" {
			t.Errorf("headers to set: %v", set)
		}
		want := []string{"x-auth-user-sub", "x_auth_scope", "x-auth-role"}
		got := ok.GetHeadersToRemove()
		if len(got) != len(want) {
			t.Fatalf("headers_to_remove %q, want %q", got, want)
		}
		for _, w := range want {
			if !containsFold(got, w) {
				t.Errorf("headers_to_remove %q lacks %s", got, w)
			}
		}
	})

	t.Run("invalid UTF-8 in the path is refused by the protobuf decoding", func(t *testing.T) {
		// proto3 strings must be UTF-8: Envoy cannot send this, and the
		// official stubs refuse to encode it. Send the bytes by hand.
		raw := invalidUTF8CheckRequest("/api/\xff\xfe")
		var out authv3.CheckResponse
		err := g.conn(t, trustedPeer).Invoke(context.Background(), "/envoy.service.auth.v3.Authorization/Check",
			raw, &out, grpc.ForceCodecV2(rawCodec{}))
		if status.Code(err) != codes.Internal {
			t.Fatalf("Check = %v, %v; want an Internal error (never an allow)", &out, err)
		}
		// The server is still serving.
		if _, err := client.Check(context.Background(), checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", app)); err != nil {
			t.Fatal(err)
		}
	})
}

// TestGRPCDeadline: a check whose deadline passes before the decision ends
// gets DeadlineExceeded (Envoy then applies its failure mode, closed), the
// server keeps serving, and the decision is still counted and logged.
func TestGRPCDeadline(t *testing.T) {
	base := newEnv(t, envOptions{noUpstream: true})
	slow := &slowStore{Store: base.store, delay: 300 * time.Millisecond}
	e := newEnv(t, envOptions{store: slow, noUpstream: true})
	client := authv3.NewAuthorizationClient(startGRPC(t, e).conn(t, trustedPeer))
	req := checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", e.fix.Token("app"))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if resp, err := client.Check(ctx, req); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Check = %v, %v; want DeadlineExceeded", resp, err)
	}
	resp, err := client.Check(context.Background(), req)
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check after the deadline case = %v, %v", resp, err)
	}
}

// slowStore delays every client lookup.
type slowStore struct {
	Store
	delay time.Duration
	calls atomic.Int64
}

func (s *slowStore) LookupClient(k string, now time.Time) (*policy.Client, error) {
	s.calls.Add(1)
	time.Sleep(s.delay)
	return s.Store.LookupClient(k, now)
}

// invalidUTF8CheckRequest encodes a CheckRequest whose path is the bytes of
// path, which need not be UTF-8 (the stubs would refuse to encode it).
func invalidUTF8CheckRequest(path string) []byte {
	placeholder := strings.Repeat("Z", len(path))
	b, err := proto.Marshal(checkRequest("GET", placeholder, "127.0.0.1"))
	if err != nil {
		panic(err)
	}
	i := bytes.Index(b, []byte(placeholder))
	copy(b[i:], path)
	return b
}

// rawCodec sends pre-encoded bytes and decodes answers as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

// TestGRPCHealthAndGracefulStop: grpc.health.v1 answers SERVING for the
// server and for envoy.service.auth.v3.Authorization; Stop lets a check in
// flight finish, then health checks and new checks fail.
func TestGRPCHealthAndGracefulStop(t *testing.T) {
	base := newEnv(t, envOptions{noUpstream: true})
	slow := &slowStore{Store: base.store, delay: 300 * time.Millisecond}
	e := newEnv(t, envOptions{store: slow, noUpstream: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := extauthz.New(e.proxy, extauthz.Config{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	g := &grpcEnv{addr: ln.Addr().String(), srv: srv}
	cc := g.conn(t, trustedPeer)
	hc := healthpb.NewHealthClient(cc)
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v", svc, r, err)
		}
	}
	client := authv3.NewAuthorizationClient(cc)
	inflight := make(chan error, 1)
	go func() {
		resp, err := client.Check(context.Background(), checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", e.fix.Token("app")))
		if err == nil && resp.GetOkResponse() == nil {
			err = status.Error(codes.Unknown, "denied")
		}
		inflight <- err
	}()
	// Wait until the check is in the store lookup, then stop.
	deadline := time.Now().Add(5 * time.Second)
	for slow.calls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the check never reached the store")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !srv.Stop(ctx) {
		t.Error("Stop did not drain in time")
	}
	if err := <-inflight; err != nil {
		t.Errorf("the check in flight during Stop: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("health check answered after Stop")
	}
}

// TestGRPCMetricsAndLog: a gRPC check is counted in the same decision
// metrics and writes the same decision log line as /_auth/envoy.
func TestGRPCMetricsAndLog(t *testing.T) {
	var logs syncbuf.Buffer
	set := metrics.NewSet()
	e := newEnv(t, envOptions{noUpstream: true, mutate: func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		c.Metrics = set
	}})
	client := authv3.NewAuthorizationClient(startGRPC(t, e).conn(t, trustedPeer))
	resp, err := client.Check(context.Background(), checkRequest("GET", "/api/things", "127.0.0.1", "X-API-Key", "app.wrong", "X-Request-Id", "grpc-log-1"))
	if err != nil || resp.GetDeniedResponse() == nil {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	var prom bytes.Buffer
	set.WritePrometheus(&prom)
	if !strings.Contains(prom.String(), `scopegate_decisions_total{result="deny",reason="api_key_invalid"} 1`) {
		t.Errorf("metrics:\n%s", prom.String())
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `"request_id":"grpc-log-1"`) {
			line = l
		}
	}
	for _, want := range []string{`"msg":"decision"`, `"reason":"api_key_invalid"`, `"mode":"forward_auth"`, `"path":"/api/things"`, `"client_ip":"127.0.0.1"`, `"client_key":"app"`} {
		if !strings.Contains(line, want) {
			t.Errorf("decision log line %q lacks %s", line, want)
		}
	}
	if strings.Contains(logs.String(), "wrong") {
		t.Error("the secret reached the log")
	}
}
