package proxy

import (
	"maps"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/proxy/envoycheck"
)

// FuzzCheckEnvoy feeds arbitrary gRPC check attributes (method, path, one
// header, source address) through CheckEnvoy. No credential the fuzzer can
// guess is valid, so nothing may be allowed but the public /healthz route;
// every answer has a status from the contract and an X-Request-Id.
func FuzzCheckEnvoy(f *testing.F) {
	for _, s := range [][4]string{
		{"GET", "/api/things", "x-api-key", "app.wrong"},
		{"GET", "/healthz", "", ""},
		{"OPTIONS", "/%68ealthz?x=1", "origin", "null"},
		{"", "", "", ""},
		{"GET", "api", "x-auth-type", "admin"},
		{"PUT", "/api/%2e%2e/x#y", "authorization", "Bearer a.b.c"},
		{"GET", "/files/a%2Fb/c", "x_auth_scope", "x"},
		{"G\x00T", "/\xff", ":path", "/healthz"},
	} {
		f.Add(s[0], s[1], s[2], s[3], "127.0.0.1")
	}
	e := newEnv(f, envOptions{noUpstream: true})
	trusted := netip.MustParseAddr("127.0.0.2")
	f.Fuzz(func(t *testing.T, method, path, hk, hv, source string) {
		src, _ := netip.ParseAddr(source)
		in := envoycheck.Request{Peer: trusted, Source: src, Method: method, Path: path,
			Headers: maps.All(map[string]string{hk: hv})}
		a := e.proxy.CheckEnvoy(&in)
		switch a.Status {
		case 200, 400, 401, 403, 431:
		default:
			t.Fatalf("status %d for %q %q %q=%q", a.Status, method, path, hk, hv)
		}
		if !setIn(a.Client, "X-Request-Id") {
			t.Errorf("no X-Request-Id: %+v", a)
		}
		if a.Status == 200 {
			p, _, _ := strings.Cut(path, "?")
			dec, err := url.PathUnescape(p)
			if err != nil || dec != "/healthz" || !src.IsValid() {
				t.Fatalf("allowed %q %q %q=%q from %q", method, path, hk, hv, source)
			}
			for _, h := range a.Upstream {
				if strings.HasPrefix(strings.ToLower(h.Name), "x-auth-") {
					t.Errorf("identity header %s on a public route", h.Name)
				}
			}
		}
	})
}
