// Package extauthz serves Envoy's gRPC external authorization
// (envoy.service.auth.v3.Authorization/Check, SPEC §12) and the gRPC
// health service on one listener (SCOPEGATE_GRPC_ADDR). It only translates:
// every check is decided by the proxy's /_auth/envoy path through
// the proxy's CheckEnvoy, so both transports give the same answers, count
// the same metrics and write the same decision log.
package extauthz

import (
	"context"
	"errors"
	"iter"
	"net"
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/scopegate/scopegate/proxy/envoycheck"
)

// Checker decides one check; *proxy.Proxy satisfies it (through its
// /_auth/envoy path).
type Checker interface {
	CheckEnvoy(c *envoycheck.Request) *envoycheck.Answer
}

// Config configures a [Server].
type Config struct {
	// MaxRecvMsgSize bounds a check request. Default 4 MiB (gRPC's own);
	// header fields over SCOPEGATE_MAX_HEADER_BYTES are refused anyway
	// (431 bad_request).
	MaxRecvMsgSize int
}

// Server is the gRPC listener: Authorization/Check and grpc.health.v1.
// It is safe for concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	checker Checker
	grpc    *grpc.Server
	health  *health.Server
}

// New builds a Server whose checks c decides.
func New(c Checker, cfg Config) *Server {
	if cfg.MaxRecvMsgSize <= 0 {
		cfg.MaxRecvMsgSize = 4 << 20
	}
	s := &Server{checker: c, health: health.NewServer()}
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize), grpc.ChainUnaryInterceptor(recoverPanic))
	authv3.RegisterAuthorizationServer(s.grpc, s)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return s
}

// Serve accepts connections on ln until [Server.Stop]. It returns nil after
// a stop.
func (s *Server) Serve(ln net.Listener) error {
	err := s.grpc.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop reports NOT_SERVING to health checks, stops accepting, and waits
// for the checks in flight until ctx ends, then cuts them. It reports
// whether the drain finished in time.
func (s *Server) Stop(ctx context.Context) bool {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		return false
	}
}

// recoverPanic turns a panic in a call into an Internal error (gRPC does
// not recover them: one bad check would stop the process). The decision
// path recovers its own; this covers the translation around it.
func recoverPanic(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, status.Errorf(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}

// Check implements envoy.service.auth.v3.Authorization/Check.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	in := checkOf(ctx, req)
	a := s.checker.CheckEnvoy(&in)
	if err := ctx.Err(); err != nil {
		// Envoy gave up waiting (its deadline passed): nobody reads the
		// answer, and Envoy applies its own failure mode (closed).
		return nil, status.FromContextError(err).Err()
	}
	return responseOf(a), nil
}

// checkOf fills the transport-neutral check from the request's attributes.
func checkOf(ctx context.Context, req *authv3.CheckRequest) envoycheck.Request {
	var in envoycheck.Request
	if p, ok := peer.FromContext(ctx); ok {
		if ta, ok := p.Addr.(*net.TCPAddr); ok {
			in.Peer, _ = netip.AddrFromSlice(ta.IP)
		}
	}
	attrs := req.GetAttributes()
	if a, err := netip.ParseAddr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress()); err == nil && a.Zone() == "" {
		in.Source = a
	}
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		in.Missing = true
		return in
	}
	in.Method, in.Path, in.Host = h.GetMethod(), h.GetPath(), h.GetHost()
	if q := h.GetQuery(); q != "" && !containsByte(in.Path, '?') {
		in.Path += "?" + q
	}
	if f := h.GetFragment(); f != "" {
		in.Path += "#" + f // a fragment is path_invalid (SPEC §5), never cut
	}
	if hm := h.GetHeaderMap().GetHeaders(); len(hm) > 0 {
		in.Headers = headerMap(hm)
	} else {
		in.Headers = mapHeaders(h.GetHeaders())
	}
	return in
}

// headerMap iterates a HeaderMap (Envoy's encode_raw_headers form).
func headerMap(hm []*corev3.HeaderValue) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, hv := range hm {
			v := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			if !yield(hv.GetKey(), v) {
				return
			}
		}
	}
}

// mapHeaders iterates the headers map (repeated fields joined with ",").
func mapHeaders(m map[string]string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, v := range m {
			if !yield(k, v) {
				return
			}
		}
	}
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// responseOf lays the answer out as a CheckResponse: 200 is an OkResponse
// (identity headers set, overwriting; the client's other prefixed headers
// removed; rate-limit, request id and CORS headers for the client), any
// other status a DeniedResponse with that status, the headers and the JSON
// body.
func responseOf(a *envoycheck.Answer) *authv3.CheckResponse {
	if a.Status == 200 {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers:              headerOptions(a.Upstream),
				HeadersToRemove:      a.Remove,
				ResponseHeadersToAdd: headerOptions(a.Client),
			}},
		}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode(a.Status))},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(a.Status)},
			Headers: headerOptions(a.Client),
			Body:    a.Body,
		}},
	}
}

// grpcCode is the CheckResponse status for a denial's HTTP status (Envoy
// only tells OK from the rest; the code is for its logs and stats).
func grpcCode(httpStatus int) codes.Code {
	switch {
	case httpStatus == 401:
		return codes.Unauthenticated
	case httpStatus == 429:
		return codes.ResourceExhausted
	case httpStatus >= 500:
		return codes.Unavailable
	}
	return codes.PermissionDenied
}

// headerOptions turns headers into overwriting HeaderValueOptions.
func headerOptions(hs []envoycheck.Header) []*corev3.HeaderValueOption {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, len(hs))
	vals := make([]corev3.HeaderValue, len(hs))
	opts := make([]corev3.HeaderValueOption, len(hs))
	for i, h := range hs {
		vals[i].Key, vals[i].Value = h.Name, h.Value
		opts[i].Header = &vals[i]
		opts[i].AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		out[i] = &opts[i]
	}
	return out
}

// Interface guards.
var (
	_ authv3.AuthorizationServer = (*Server)(nil)
)
