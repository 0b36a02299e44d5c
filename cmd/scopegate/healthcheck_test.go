package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func runHealthcheck(t *testing.T, adminAddr string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("SCOPEGATE_ADMIN_ADDR", adminAddr)
	var out, errOut bytes.Buffer
	code = run(append([]string{"healthcheck"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHealthcheckRealAdminListener: exit 0 against a running gateway's
// admin listener, also when the address is written as 0.0.0.0:PORT or
// :PORT (checked on loopback).
func TestHealthcheckRealAdminListener(t *testing.T) {
	g := startGateway(t, map[string]string{"SCOPEGATE_STORE_FILE": basicStoreFile(t)})
	_, port, _ := net.SplitHostPort(g.admin)
	for _, addr := range []string{g.admin, "0.0.0.0:" + port, ":" + port} {
		code, stdout, stderr := runHealthcheck(t, addr)
		if code != exitOK || !strings.Contains(stdout, "127.0.0.1:"+port+"/readyz: 200") {
			t.Errorf("healthcheck %s: exit %d, stdout %q, stderr %q", addr, code, stdout, stderr)
		}
		if code, stdout, stderr := runHealthcheck(t, addr, "--live"); code != exitOK || !strings.Contains(stdout, "127.0.0.1:"+port+"/healthz: 200") {
			t.Errorf("healthcheck --live %s: exit %d, stdout %q, stderr %q", addr, code, stdout, stderr)
		}
	}
}

// TestHealthcheckFailures: a closed port, a non-200 answer and a listener
// that never answers are exit 1 with one line.
func TestHealthcheckFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			t.Errorf("path %q", r.URL.Path)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept, never answer
		}
	}()

	cases := []struct {
		name, addr, want string
		max              time.Duration
	}{
		{"closed port", closedAddr, "connection refused", time.Second},
		{"status 503", strings.TrimPrefix(unhealthy.URL, "http://"), "status 503", time.Second},
		{"no answer", silent.Addr().String(), "deadline exceeded", healthcheckTimeout + time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runHealthcheck(t, c.addr)
			if code != exitFail {
				t.Errorf("exit %d, want 1", code)
			}
			if took := time.Since(start); took > c.max {
				t.Errorf("took %v, want at most %v", took, c.max)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, c.addr) || stdout != "" {
				t.Errorf("stderr %q, stdout %q: want one line with %q and the address", stderr, stdout, c.want)
			}
		})
	}
}

// TestHealthcheckBadAddr: an address that is not host:port is invalid
// configuration (exit 2) naming the variable.
func TestHealthcheckBadAddr(t *testing.T) {
	code, _, stderr := runHealthcheck(t, "nonsense")
	if code != exitConfig || !strings.Contains(stderr, "SCOPEGATE_ADMIN_ADDR") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestAdminURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9090": "http://127.0.0.1:9090/healthz",
		":9090":          "http://127.0.0.1:9090/healthz",
		"0.0.0.0:9090":   "http://127.0.0.1:9090/healthz",
		"[::]:9090":      "http://127.0.0.1:9090/healthz",
		"[::1]:9090":     "http://[::1]:9090/healthz",
		"admin:9090":     "http://admin:9090/healthz",
	} {
		if got, err := adminURL(in, "/healthz"); err != nil || got != want {
			t.Errorf("adminURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if adminAddrDefault() != "127.0.0.1:9090" {
		t.Errorf("adminAddrDefault() = %q", adminAddrDefault())
	}
}
