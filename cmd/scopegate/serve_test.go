package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/syncbuf"
)

const serveRoutes = `
default: deny
routes:
  - path: /healthz
    auth: none
  - path: /api/**
`

// basicStoreFile writes the file store of storetest.Basic to a temporary
// file and returns its path.
func basicStoreFile(t *testing.T) string {
	t.Helper()
	return fixtureStoreFile(t, storetest.Basic())
}

// serveEnv sets the environment of a test gateway on loopback ports with
// the file store of storetest.Basic and returns the routes path.
func serveEnv(t *testing.T, upstream string) (routesPath string) {
	t.Helper()
	routesPath = filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routesPath, []byte(serveRoutes), 0o600); err != nil {
		t.Fatal(err)
	}
	clearScopegateEnv(t)
	t.Setenv("SCOPEGATE_STORE_FILE", basicStoreFile(t))
	t.Setenv("SCOPEGATE_ROUTES_FILE", routesPath)
	t.Setenv("SCOPEGATE_LISTEN_ADDR", "127.0.0.1:0")
	t.Setenv("SCOPEGATE_ADMIN_ADDR", "127.0.0.1:0")
	t.Setenv("SCOPEGATE_UPSTREAM_URL", upstream)
	t.Setenv("SCOPEGATE_SHUTDOWN_TIMEOUT", "5s")
	return routesPath
}

// startServe runs serve with the configuration of the process environment
// (serveEnv) until the test ends.
func startServe(t *testing.T) *gateway {
	t.Helper()
	cfg, err := loadConfig()
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	return runGateway(t, cfg)
}

func httpGet(t *testing.T, url string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeConfigErrors: invalid configuration exits 2 with one line naming
// the variable.
func TestServeConfigErrors(t *testing.T) {
	cases := []struct {
		name, key, value, want string
	}{
		{"no store", "SCOPEGATE_STORE_FILE", "", "SCOPEGATE_DATABASE_URL"},
		{"bad routes file", "SCOPEGATE_ROUTES_FILE", "BAD", "SCOPEGATE_ROUTES_FILE"},
		{"missing routes file", "SCOPEGATE_ROUTES_FILE", "/nonexistent/routes.yaml", "SCOPEGATE_ROUTES_FILE"},
		{"bad upstream", "SCOPEGATE_UPSTREAM_URL", "ftp://x", "SCOPEGATE_UPSTREAM_URL"},
		{"bad store file", "SCOPEGATE_STORE_FILE", "BAD", "SCOPEGATE_STORE_FILE"},
		{"unparsable database URL", "SCOPEGATE_DATABASE_URL", "postgres://user:supersecret@[::1", "SCOPEGATE_DATABASE_URL"},
		{"bad duration", "SCOPEGATE_UPSTREAM_TIMEOUT", "soon", "SCOPEGATE_UPSTREAM_TIMEOUT"},
		{"bad algorithm", "SCOPEGATE_JWT_ALGORITHMS", "none", "SCOPEGATE_JWT_ALGORITHMS"},
		{"bad log level", "SCOPEGATE_LOG_LEVEL", "loud", "SCOPEGATE_LOG_LEVEL"},
		{"listen address without port", "SCOPEGATE_LISTEN_ADDR", "notanaddr", "SCOPEGATE_LISTEN_ADDR"},
		{"listen port out of range", "SCOPEGATE_LISTEN_ADDR", "127.0.0.1:99999", "SCOPEGATE_LISTEN_ADDR"},
		{"bad admin address", "SCOPEGATE_ADMIN_ADDR", "garbage", "SCOPEGATE_ADMIN_ADDR"},
		{"API key header with a space", "SCOPEGATE_API_KEY_HEADER", "bad header", "SCOPEGATE_API_KEY_HEADER"},
		{"API key header with an underscore", "SCOPEGATE_API_KEY_HEADER", "X_API_Key", "SCOPEGATE_API_KEY_HEADER"},
		{"identity prefix with a space", "SCOPEGATE_IDENTITY_HEADER_PREFIX", "X Bad-", "SCOPEGATE_IDENTITY_HEADER_PREFIX"},
		{"negative connection limit", "SCOPEGATE_MAX_CONNS", "-1", "SCOPEGATE_MAX_CONNS"},
		{"zero upstream idle timeout", "SCOPEGATE_UPSTREAM_IDLE_TIMEOUT", "0s", "SCOPEGATE_UPSTREAM_IDLE_TIMEOUT"},
		{"negative body limit", "SCOPEGATE_MAX_BODY_BYTES", "-1", "SCOPEGATE_MAX_BODY_BYTES"},
		{"zero header limit", "SCOPEGATE_MAX_HEADER_BYTES", "0", "SCOPEGATE_MAX_HEADER_BYTES"},
		{"cookie name with a space", "SCOPEGATE_JWT_COOKIE", "a b", "SCOPEGATE_JWT_COOKIE"},
		{"JWKS URL not http(s)", "SCOPEGATE_JWT_JWKS_URL", "ftp://x/jwks", "SCOPEGATE_JWT_JWKS_URL"},
		{"JWKS URL with a space", "SCOPEGATE_JWT_JWKS_URL", "http://exa mple", "SCOPEGATE_JWT_JWKS_URL"},
		{"unknown rate limit backend", "SCOPEGATE_RATE_LIMIT_BACKEND", "memcached", "SCOPEGATE_RATE_LIMIT_BACKEND"},
		{"redis backend without a URL", "SCOPEGATE_RATE_LIMIT_BACKEND", "redis", "SCOPEGATE_REDIS_URL"},
		{"malformed Redis URL", "SCOPEGATE_REDIS_URL", "redis://user:supersecret@[::1", "SCOPEGATE_REDIS_URL"},
		{"Redis URL of another scheme", "SCOPEGATE_REDIS_URL", "http://user:supersecret@127.0.0.1:6379", "SCOPEGATE_REDIS_URL"},
		{"unknown Redis error mode", "SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR", "open", "SCOPEGATE_RATE_LIMIT_ON_REDIS_ERROR"},
		{"zero Redis timeout", "SCOPEGATE_REDIS_TIMEOUT", "0s", "SCOPEGATE_REDIS_TIMEOUT"},
		{"require exp not a boolean", "SCOPEGATE_JWT_REQUIRE_EXP", "maybe", "SCOPEGATE_JWT_REQUIRE_EXP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			serveEnv(t, "http://127.0.0.1:1")
			v := c.value
			if v == "BAD" {
				bad := filepath.Join(t.TempDir(), "bad.yaml")
				os.WriteFile(bad, []byte("routes: [ {path: /x, auth: [telepathy]} ]\nbogus: 1\n"), 0o600)
				v = bad
			}
			if c.key == "SCOPEGATE_DATABASE_URL" {
				t.Setenv("SCOPEGATE_STORE_FILE", "")
			}
			t.Setenv(c.key, v)
			var stdout, stderr bytes.Buffer
			code := run([]string{"serve"}, &stdout, &stderr)
			if code != exitConfig {
				t.Fatalf("exit %d, want 2; stderr %s", code, stderr.String())
			}
			line := strings.TrimSpace(stderr.String())
			if strings.Count(line, "\n") != 0 || !strings.Contains(line, c.want) {
				t.Errorf("stderr %q: want one line naming %s", line, c.want)
			}
			if strings.Contains(line, "supersecret") {
				t.Errorf("the DSN password reached stderr")
			}
		})
	}
}

// TestServeReloadAndGracefulShutdown: SIGHUP reloads the routes (a bad file
// is rejected and the old rules stay); SIGTERM lets in-flight requests
// finish, then serve returns nil (exit 0).
func TestServeReloadAndGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	var parked atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/slow" {
			parked.Add(1)
			<-release
		}
		fmt.Fprintf(w, "upstream %s sub=%q key=%q", r.URL.Path, r.Header.Get("X-Auth-User-Sub"), r.Header.Get("X-Auth-Client-Key"))
	}))
	defer up.Close()
	routesPath := serveEnv(t, up.URL)
	r := startServe(t)
	base := r.base
	tok := storetest.Basic().Token("app")

	if s, body := httpGet(t, base+"/api/things", "X-API-Key", tok); s != 200 || !strings.Contains(body, `key="app"`) {
		t.Fatalf("allowed request: %d %s", s, body)
	}
	if s, _ := httpGet(t, "http://"+r.admin+"/readyz"); s != 200 {
		t.Errorf("/readyz %d", s)
	}

	// A bad routes file on reload: rejected, the old rules stay.
	os.WriteFile(routesPath, []byte("routes: [ {path: /x, auth: [telepathy]} ]\n"), 0o600)
	r.sigs <- syscall.SIGHUP
	waitLog(t, r.logs, "routes reload rejected")
	if s, _ := httpGet(t, base+"/api/things", "X-API-Key", tok); s != 200 {
		t.Errorf("after a rejected reload: %d", s)
	}
	// A good one applies.
	os.WriteFile(routesPath, []byte("default: deny\nroutes:\n  - path: /healthz\n    auth: none\n"), 0o600)
	r.sigs <- syscall.SIGHUP
	waitLog(t, r.logs, "routes reloaded")
	if s, body := httpGet(t, base+"/api/things", "X-API-Key", tok); s != 403 || !strings.Contains(body, "no_route") {
		t.Errorf("after reload: %d %s", s, body)
	}
	os.WriteFile(routesPath, []byte(serveRoutes), 0o600)
	r.sigs <- syscall.SIGHUP
	waitLogCount(t, r.logs, "routes reloaded", 2)
	// Each SIGHUP reloaded the store file too, logged once (after the
	// routes, so wait for the third).
	waitLogCount(t, r.logs, "store reloaded", 3)
	storeLines := 0
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(l, "store") && strings.Contains(l, "reload") {
			storeLines++
		}
	}
	if storeLines != 3 {
		t.Errorf("%d store reload log lines for 3 SIGHUPs, want 3:\n%s", storeLines, r.logs.String())
	}

	// In-flight requests survive SIGTERM.
	const n = 8
	results := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() {
			s, _ := httpGet(t, base+"/api/slow", "X-API-Key", tok)
			results <- s
		}()
	}
	waitFor(t, "every request parked in the upstream", func() bool { return parked.Load() == n })
	r.sigs <- syscall.SIGTERM
	// The drain has begun once /readyz says 503 (its first step); the
	// parked requests are released into it.
	waitFor(t, "/readyz 503 once draining", func() bool {
		resp, err := http.Get("http://" + r.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	close(release)
	for i := 0; i < n; i++ {
		if s := <-results; s != 200 {
			t.Errorf("in-flight request %d: status %d", i, s)
		}
	}
	select {
	case <-r.exited:
		if r.err != nil {
			t.Errorf("serve returned %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(r.logs.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped log line")
	}
	if strings.Contains(r.logs.String(), tok) || strings.Contains(r.logs.String(), "secret-of-app") {
		t.Errorf("a secret reached the log")
	}
}

func waitLog(t *testing.T, logs *syncbuf.Buffer, msg string) {
	t.Helper()
	waitLogCount(t, logs, msg, 1)
}

// waitLogCount waits until msg appears at least n times in logs.
func waitLogCount(t *testing.T, logs *syncbuf.Buffer, msg string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", msg, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
