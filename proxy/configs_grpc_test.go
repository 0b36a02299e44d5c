package proxy

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlDocs decodes every document of a multi-document YAML file.
func yamlDocs(t *testing.T, raw []byte) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
}

// find returns the first mapping in v for which ok is true.
func find(v any, ok func(map[string]any) bool) map[string]any {
	if docs, isDocs := v.([]map[string]any); isDocs {
		l := make([]any, len(docs))
		for i, d := range docs {
			l[i] = d
		}
		v = l
	}
	var hit map[string]any
	walkMaps(v, func(m map[string]any) {
		if hit == nil && ok(m) {
			hit = m
		}
	})
	return hit
}

// TestEnvoyGRPCConfig checks configs/envoy-grpc.yaml (Envoy is not run
// here): the ext_authz filter speaks gRPC v3 to an HTTP/2 cluster on
// scopegate's gRPC port, fails closed, and health-checks the Authorization
// service; the app's request loses the API key and override headers.
func TestEnvoyGRPCConfig(t *testing.T) {
	docs := yamlDocs(t, readConfig(t, "envoy-grpc.yaml"))
	authz := find(docs, func(m map[string]any) bool {
		return m["@type"] == "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
	})
	if authz == nil {
		t.Fatal("no ext_authz filter")
	}
	if authz["failure_mode_allow"] != false || authz["transport_api_version"] != "V3" {
		t.Errorf("ext_authz: %v", authz)
	}
	gs, _ := authz["grpc_service"].(map[string]any)
	eg, _ := gs["envoy_grpc"].(map[string]any)
	if eg == nil || eg["cluster_name"] != "scopegate_grpc" || authz["http_service"] != nil {
		t.Fatalf("grpc_service: %v", gs)
	}
	cluster := find(docs, func(m map[string]any) bool { return m["name"] == "scopegate_grpc" && m["load_assignment"] != nil })
	if cluster == nil {
		t.Fatal("no scopegate_grpc cluster")
	}
	if find(cluster, func(m map[string]any) bool { _, ok := m["http2_protocol_options"]; return ok }) == nil {
		t.Error("the gRPC cluster does not speak HTTP/2")
	}
	if find(cluster, func(m map[string]any) bool {
		return m["service_name"] == "envoy.service.auth.v3.Authorization"
	}) == nil {
		t.Error("no gRPC health check of envoy.service.auth.v3.Authorization")
	}
	raw := string(readConfig(t, "envoy-grpc.yaml"))
	for _, h := range strippedAfterCheck {
		if !strings.Contains(raw, "- "+strings.ToLower(h)+"\n") {
			t.Errorf("request_headers_to_remove lacks %s", strings.ToLower(h))
		}
	}
}

// TestMeshConfigs checks the Envoy Gateway SecurityPolicy and the Istio
// CUSTOM AuthorizationPolicy examples: both point at scopegate's gRPC port
// and fail closed.
func TestMeshConfigs(t *testing.T) {
	kinds := func(docs []map[string]any) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, d := range docs {
			out[d["kind"].(string)] = d
		}
		return out
	}
	eg := kinds(yamlDocs(t, readConfig(t, "envoy-gateway.yaml")))
	sp := eg["SecurityPolicy"]
	if sp == nil || sp["apiVersion"] != "gateway.envoyproxy.io/v1alpha1" {
		t.Fatalf("no SecurityPolicy: %v", eg)
	}
	ext := sp["spec"].(map[string]any)["extAuth"].(map[string]any)
	if ext["failOpen"] != false || find(ext["grpc"], func(m map[string]any) bool { return m["port"] == 9001 }) == nil {
		t.Errorf("extAuth: %v", ext)
	}
	istio := kinds(yamlDocs(t, readConfig(t, "istio.yaml")))
	ap := istio["AuthorizationPolicy"]
	if ap == nil || ap["spec"].(map[string]any)["action"] != "CUSTOM" {
		t.Fatalf("no CUSTOM AuthorizationPolicy: %v", istio)
	}
	prov := find(istio["IstioOperator"], func(m map[string]any) bool { return m["name"] == "scopegate" })
	grpcProv, _ := prov["envoyExtAuthzGrpc"].(map[string]any)
	if grpcProv == nil || grpcProv["port"] != 9001 || grpcProv["failOpen"] != false {
		t.Errorf("extension provider: %v", prov)
	}
	if ap["spec"].(map[string]any)["provider"].(map[string]any)["name"] != "scopegate" {
		t.Error("the policy does not name the scopegate provider")
	}
	for _, kk := range []map[string]map[string]any{eg, istio} {
		svc := kk["Service"]
		if find(svc, func(m map[string]any) bool { return m["appProtocol"] == "grpc" && m["port"] == 9001 }) == nil {
			t.Errorf("Service: %v", svc)
		}
	}
}
