package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/syncbuf"
)

// clearScopegateEnv unsets every SCOPEGATE_ variable for the test (restored
// afterwards), so the developer's environment cannot change the outcome.
func clearScopegateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SCOPEGATE_") && k != pgtest.EnvURL {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// testConfig loads the configuration a test gateway runs with: the
// SCOPEGATE_ variables of env and nothing else from the environment,
// listeners on free loopback ports, a 5 s shutdown timeout.
func testConfig(t *testing.T, env map[string]string) *Config {
	t.Helper()
	clearScopegateEnv(t)
	t.Setenv("SCOPEGATE_LISTEN_ADDR", "127.0.0.1:0")
	t.Setenv("SCOPEGATE_ADMIN_ADDR", "127.0.0.1:0")
	t.Setenv("SCOPEGATE_SHUTDOWN_TIMEOUT", "5s")
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	return cfg
}

// demoRun is an in-process `scopegate demo`.
type demoRun struct {
	out, logs *syncbuf.Buffer
	sigs      chan os.Signal
	done      chan error
	result    *error // set by wait
}

// startDemo runs the demo on free loopback ports (through the same
// SCOPEGATE_LISTEN_ADDR / SCOPEGATE_ADMIN_ADDR overrides a user would set)
// and waits for its banner.
func startDemo(t *testing.T, env map[string]string) *demoRun {
	t.Helper()
	cfg := testConfig(t, env)
	d := &demoRun{out: &syncbuf.Buffer{}, logs: &syncbuf.Buffer{}, sigs: make(chan os.Signal, 1), done: make(chan error, 1)}
	logger := slog.New(slog.NewJSONHandler(d.logs, nil))
	ready := make(chan struct{})
	go func() { d.done <- runDemo(cfg, logger, d.out, d.sigs, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-d.done:
		t.Fatalf("demo returned early: %v\n%s", err, d.logs)
	case <-time.After(15 * time.Second):
		t.Fatalf("demo did not start\n%s", d.logs)
	}
	t.Cleanup(func() {
		if d.result == nil {
			d.sigs <- syscall.SIGTERM
			d.wait(t)
		}
	})
	return d
}

// wait returns the demo's result once it has stopped (at most 15 s).
func (d *demoRun) wait(t *testing.T) error {
	t.Helper()
	if d.result != nil {
		return *d.result
	}
	select {
	case err := <-d.done:
		d.result = &err
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop")
		return nil
	}
}

// demoLine is one printed "# STATUS [reason]: text" comment and its command.
type demoLine struct {
	status  int
	reason  string
	comment string
	cmd     string
}

var (
	demoLineRE    = regexp.MustCompile(`(?m)^# (\d{3})(?: ([a-z_]+))?: (.*)\n((?:curl|for) .*)$`)
	demoJWTRE     = regexp.MustCompile(`(?m)^JWT=(\S+)$`)
	demoKeyRE     = regexp.MustCompile(`(?m)^API key \(.*\n  (\S+)$`)
	demoDirRE     = regexp.MustCompile(`\(copied to (\S+)\)`)
	demoGatewayRE = regexp.MustCompile(`(?m)^  gateway +(http://\S+) +\(proxies to the built-in echo upstream (http://\S+)\)`)
	demoForRE     = regexp.MustCompile(`^for i in ([0-9 ]+); do (curl .*); done$`)
)

// shellWords splits a command line the way sh would for the printed lines:
// single quotes literal, double quotes and bare words with $JWT / ${JWT}
// expanded.
func shellWords(t *testing.T, line string, vars map[string]string) []string {
	t.Helper()
	expand := func(s string) string {
		return os.Expand(s, func(k string) string {
			v, ok := vars[k]
			if !ok {
				t.Fatalf("printed line uses an unknown variable $%s: %s", k, line)
			}
			return v
		})
	}
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				t.Fatalf("unbalanced quote in %q", line)
			}
			s := line[i+1 : i+1+j]
			if c == '"' {
				s = expand(s)
			}
			cur.WriteString(s)
			inWord = true
			i += j + 1
		default:
			j := i
			for j < len(line) && line[j] != ' ' && line[j] != '\'' && line[j] != '"' {
				j++
			}
			cur.WriteString(expand(line[i:j]))
			inWord = true
			i = j - 1
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// curlRequest turns the words of a printed curl command into a request.
func curlRequest(t *testing.T, words []string) *http.Request {
	t.Helper()
	if len(words) == 0 || words[0] != "curl" {
		t.Fatalf("not a curl command: %q", words)
	}
	method, url := "GET", ""
	hdr := http.Header{}
	for i := 1; i < len(words); i++ {
		switch w := words[i]; w {
		case "-i", "-s":
		case "-o", "-w":
			i++
		case "-X":
			i++
			method = words[i]
		case "-H":
			i++
			k, v, ok := strings.Cut(words[i], ":")
			if !ok {
				t.Fatalf("bad header %q", words[i])
			}
			hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		default:
			if !strings.HasPrefix(w, "http://") || url != "" {
				t.Fatalf("unexpected curl argument %q in %q", w, words)
			}
			url = w
		}
	}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	return req
}

type demoResponse struct {
	status int
	header http.Header
	body   []byte
}

func doDemoRequest(t *testing.T, req *http.Request) demoResponse {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return demoResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestDemoPrintedLinesWork starts `scopegate demo`, parses what it prints
// (API key, JWT, curl lines with their expected outcome), runs the HTTP
// equivalent of every curl line over loopback and checks status, reason
// code and headers, then stops the demo by signal and checks a clean exit.
func TestDemoPrintedLinesWork(t *testing.T) {
	checkDemo(t, startDemo(t, nil), "X-API-Key")
}

// TestDemoOverrides: SCOPEGATE_* variables still apply to the demo (here
// the API key header, the forward-auth path, the JWT audience and the log
// level), and the printed lines follow them; the variables the demo brings
// itself (a database URL) are ignored with a warning.
func TestDemoOverrides(t *testing.T) {
	d := startDemo(t, map[string]string{
		"SCOPEGATE_API_KEY_HEADER":   "X-Demo-Key",
		"SCOPEGATE_AUTH_PATH":        "/check",
		"SCOPEGATE_JWT_AUDIENCE":     "my-audience",
		"SCOPEGATE_JWT_ALGORITHMS":   "RS256",
		"SCOPEGATE_DATABASE_URL":     "postgres://nobody@127.0.0.1:1/none",
		"SCOPEGATE_LOG_ALLOWED":      "true",
		"SCOPEGATE_SHUTDOWN_TIMEOUT": "3s",
	})
	out := d.out.String()
	if !strings.Contains(out, "-H 'X-Demo-Key: "+demoToken+"'") || !strings.Contains(out, "/check\n") {
		t.Errorf("printed lines do not follow SCOPEGATE_API_KEY_HEADER / SCOPEGATE_AUTH_PATH:\n%s", out)
	}
	if !strings.Contains(d.logs.String(), "SCOPEGATE_DATABASE_URL") {
		t.Errorf("no warning that SCOPEGATE_DATABASE_URL is ignored:\n%s", d.logs)
	}
	checkDemo(t, d, "X-Demo-Key")
	if !strings.Contains(d.logs.String(), `"decision":"allow"`) {
		t.Errorf("SCOPEGATE_LOG_ALLOWED=true did not log allowed requests")
	}
}

// checkDemo parses the banner of a running demo, runs every printed line
// and stops the demo.
func checkDemo(t *testing.T, d *demoRun, keyHeader string) {
	t.Helper()
	out := d.out.String()

	key := demoKeyRE.FindStringSubmatch(out)
	jwtm := demoJWTRE.FindStringSubmatch(out)
	gw := demoGatewayRE.FindStringSubmatch(out)
	dir := demoDirRE.FindStringSubmatch(out)
	if key == nil || jwtm == nil || gw == nil || dir == nil {
		t.Fatalf("banner lacks the API key, the JWT, the gateway line or the data directory:\n%s", out)
	}
	if strings.Count(out, "scopegate demo is running") != 1 {
		t.Errorf("banner printed %d times, want once", strings.Count(out, "scopegate demo is running"))
	}
	if _, err := os.Stat(dir[1]); err != nil {
		t.Errorf("data directory: %v", err)
	}
	lines := demoLineRE.FindAllStringSubmatch(out, -1)
	if len(lines) < 10 {
		t.Fatalf("only %d curl lines parsed from:\n%s", len(lines), out)
	}
	vars := map[string]string{"JWT": jwtm[1]}
	seen := map[int]bool{}
	var sawForwardAuth, sawJWTAllow, sawKeyAllow bool
	for _, m := range lines {
		status, _ := strconv.Atoi(m[1])
		l := demoLine{status: status, reason: m[2], comment: m[3], cmd: m[4]}
		t.Run(l.comment, func(t *testing.T) {
			runs, cmd := 1, l.cmd
			if f := demoForRE.FindStringSubmatch(l.cmd); f != nil {
				runs, cmd = len(strings.Fields(f[1])), f[2]
			}
			var req *http.Request
			for i := 0; i < runs; i++ {
				req = curlRequest(t, shellWords(t, cmd, vars))
				resp := doDemoRequest(t, req)
				seen[resp.status] = true
				if resp.status != l.status {
					t.Fatalf("%s: status %d, want %d; body %s", cmd, resp.status, l.status, resp.body)
				}
				if l.reason != "" {
					var body struct {
						Reason    string `json:"reason"`
						RequestID string `json:"request_id"`
					}
					if err := json.Unmarshal(resp.body, &body); err != nil {
						t.Fatalf("denial body %q: %v", resp.body, err)
					}
					if body.Reason != l.reason || body.RequestID == "" || resp.header.Get("X-Request-Id") != body.RequestID {
						t.Errorf("%s: body %s, X-Request-Id %q; want reason %s and the same request_id", cmd, resp.body, resp.header.Get("X-Request-Id"), l.reason)
					}
				}
				checkDemoResponse(t, l, req, resp, keyHeader, key[1], gw[1])
			}
			switch {
			case req.Header.Get("X-Original-URI") != "" && l.status == 200:
				sawForwardAuth = true
			case strings.Contains(cmd, "$JWT") && l.status == 200:
				sawJWTAllow = true
			case strings.Contains(cmd, key[1]) && l.status == 200:
				sawKeyAllow = true
			}
		})
	}
	for _, s := range []int{200, 401, 403, 429} {
		if !seen[s] {
			t.Errorf("no printed line shows a %d", s)
		}
	}
	if !sawForwardAuth || !sawJWTAllow || !sawKeyAllow {
		t.Errorf("missing an allowed line: forward-auth %v, JWT %v, printed API key %v", sawForwardAuth, sawJWTAllow, sawKeyAllow)
	}
	if strings.Contains(d.logs.String(), "demo-secret-change-me") || strings.Contains(d.logs.String(), jwtm[1]) {
		t.Errorf("a secret reached the log")
	}

	// Stop it as Ctrl-C would: a clean exit, nothing left behind.
	d.sigs <- syscall.SIGINT
	if err := d.wait(t); err != nil {
		t.Fatalf("demo returned %v", err)
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("data directory %s still there after exit: %v", dir[1], err)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(gw[2], "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("echo upstream %s still listening after exit", gw[2])
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(gw[1], "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("gateway %s still listening after exit", gw[1])
	}
}

// checkDemoResponse checks what each kind of printed line promises beyond
// its status and reason.
func checkDemoResponse(t *testing.T, l demoLine, req *http.Request, resp demoResponse, keyHeader, apiKey, gateway string) {
	t.Helper()
	forwardAuth := req.Header.Get("X-Original-URI") != ""
	proxied := strings.HasPrefix(req.URL.String(), gateway+"/api/")
	switch {
	case l.status == 200 && proxied:
		var echo demoEchoReply
		if err := json.Unmarshal(resp.body, &echo); err != nil || echo.Upstream != "scopegate demo echo" {
			t.Fatalf("allowed request did not reach the echo upstream: %s", resp.body)
		}
		if echo.Method != req.Method || echo.Path != req.URL.EscapedPath() {
			t.Errorf("echo saw %s %s, want %s %s", echo.Method, echo.Path, req.Method, req.URL.EscapedPath())
		}
		if len(echo.CredentialsForwarded) != 0 && req.Header.Get(keyHeader) != "" {
			t.Errorf("API key reached the upstream: %v", echo.CredentialsForwarded)
		}
		if strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
			if echo.Identity["X-Auth-Type"] != "jwt" || echo.Identity["X-Auth-User-Sub"] != "alice" ||
				echo.Identity["X-Auth-User-Email"] != "alice@example.com" || echo.Identity["X-Auth-User-Id"] == "" ||
				!strings.HasPrefix(echo.Identity["X-Auth-Scope"], "company:acme") && !strings.HasPrefix(echo.Identity["X-Auth-Scope"], "site:acme-") {
				t.Errorf("upstream identity headers for the JWT: %v", echo.Identity)
			}
		} else if echo.Identity["X-Auth-Type"] != "api_key" || echo.Identity["X-Auth-Client-Id"] == "" ||
			!strings.HasPrefix(req.Header.Get(keyHeader), echo.Identity["X-Auth-Client-Key"]+".") {
			t.Errorf("upstream identity headers for the API key: %v", echo.Identity)
		}
		if key := req.Header.Get(keyHeader); key == apiKey && resp.header.Get("RateLimit-Limit") != "60" {
			t.Errorf("allowed response of the demo key: RateLimit-Limit %q, want 60", resp.header.Get("RateLimit-Limit"))
		}
	case l.status == 200 && forwardAuth:
		if resp.header.Get("X-Auth-Type") != "api_key" || resp.header.Get("X-Auth-Client-Key") != "demo" {
			t.Errorf("forward-auth answer lacks the identity headers: %v", resp.header)
		}
		if bytes.Contains(resp.body, []byte("scopegate demo echo")) {
			t.Errorf("forward-auth request was proxied: %s", resp.body)
		}
	case l.status == 429:
		ra, err := strconv.Atoi(resp.header.Get("Retry-After"))
		if err != nil || ra < 1 || resp.header.Get("RateLimit-Limit") != "3" || resp.header.Get("RateLimit-Remaining") != "0" ||
			!strings.Contains(resp.header.Get("RateLimit-Policy"), "q=3") {
			t.Errorf("429 headers: %v", resp.header)
		}
	case l.reason == "token_invalid":
		if !strings.Contains(resp.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("WWW-Authenticate %q", resp.header.Get("WWW-Authenticate"))
		}
	}
	if resp.header.Get("X-Request-Id") == "" && !strings.HasSuffix(req.URL.Path, "/healthz") {
		t.Errorf("no X-Request-Id on %s", req.URL)
	}
}

// TestDemoPortBusy: when the traffic or admin address is taken, the demo says so in
// one line and exits 1.
func TestDemoPortBusy(t *testing.T) {
	for _, busy := range []string{"SCOPEGATE_LISTEN_ADDR", "SCOPEGATE_ADMIN_ADDR"} {
		t.Run(busy, func(t *testing.T) {
			clearScopegateEnv(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			t.Setenv("SCOPEGATE_LISTEN_ADDR", "127.0.0.1:0")
			t.Setenv("SCOPEGATE_ADMIN_ADDR", "127.0.0.1:0")
			t.Setenv(busy, ln.Addr().String())
			var stdout, stderr bytes.Buffer
			code := run([]string{"demo"}, &stdout, &stderr)
			if code != exitFail {
				t.Fatalf("exit %d, want 1; stderr %s", code, stderr.String())
			}
			last := lastLine(stderr.String())
			want := fmt.Sprintf("%s is already in use", ln.Addr())
			if !strings.Contains(last, want) || !strings.Contains(last, busy+"=") {
				t.Errorf("last stderr line %q: want %q and %s= to set", last, want, busy)
			}
			if stdout.Len() != 0 {
				t.Errorf("banner printed although nothing listens: %s", stdout.String())
			}
		})
	}
}

// TestDemoRejectsArguments: demo takes no arguments (usage error, exit 2).
func TestDemoRejectsArguments(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"demo", "extra"}, &stdout, &stderr); code != exitConfig {
		t.Errorf("exit %d, want 2; stderr %s", code, stderr.String())
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
