package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/scopegate/scopegate/internal/storetest"
)

// TestServeGRPC: with SCOPEGATE_GRPC_ADDR, serve answers Envoy's gRPC
// Authorization/Check and grpc.health.v1 on that port, and stops both
// listeners on SIGTERM.
func TestServeGRPC(t *testing.T) {
	serveEnv(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("SCOPEGATE_GRPC_ADDR", addr)
	g := startServe(t)
	if !strings.Contains(g.logs.String(), `"grpc_addr":"`+addr+`"`) {
		t.Errorf("the serving line does not name the gRPC address:\n%s", g.logs)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	if r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", r, err)
	}
	check := func(key string) *authv3.CheckResponse {
		t.Helper()
		resp, err := authv3.NewAuthorizationClient(cc).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1"}}}},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/api/things", Headers: map[string]string{"x-api-key": key}}},
		}})
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		return resp
	}
	if r := check(storetest.Basic().Token("app")); r.GetOkResponse() == nil {
		t.Errorf("allowed key: %v", r)
	}
	if r := check("app.wrong"); r.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("wrong key: %v", r)
	}
	g.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("the gRPC listener still answers after the shutdown")
	}
}

// TestServeGRPCAddrInUse: a SCOPEGATE_GRPC_ADDR that cannot be bound stops
// start-up with an error naming the variable.
func TestServeGRPCAddrInUse(t *testing.T) {
	serveEnv(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("SCOPEGATE_GRPC_ADDR", ln.Addr().String())
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	err = serve(cfg, slog.New(slog.DiscardHandler), make(chan os.Signal), nil)
	if err == nil || !strings.Contains(err.Error(), "SCOPEGATE_GRPC_ADDR") {
		t.Fatalf("serve = %v, want an error naming SCOPEGATE_GRPC_ADDR", err)
	}
}
