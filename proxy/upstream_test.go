package proxy

// Upstream connections: keep-alive reuse and staleness, answers the
// gateway must not pass on or pool (a 101, oversized or trickled headers),
// and whose fault a failure is (the client's body, the upstream's health).

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/syncbuf"
	"github.com/scopegate/scopegate/internal/testproc"
)

// TestStaleKeepAliveRetried: an upstream that closes each connection after
// one answer (without saying Connection: close) makes the pooled connection
// stale; idempotent requests are retried once on a new connection.
func TestStaleKeepAliveRetried(t *testing.T) {
	addr := testproc.ServeConns(t, func(c net.Conn) {
		buf := make([]byte, 4096)
		c.Read(buf)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		time.Sleep(20 * time.Millisecond)
	})
	e := newEnv(t, envOptions{upstreams: []string{"http://" + addr}})
	for i := 0; i < 5; i++ {
		// Without Connection: close from the client, the gateway pools the
		// upstream connection, which the upstream then closes.
		raw := strings.Replace(reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")), "Connection: close\r\n", "", 1)
		r := e.do(directPeer, raw)
		if r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond) // the upstream has closed the pooled connection
	}
}

// TestUpstreamShortKeepAlive: an upstream that closes idle keep-alive
// connections after 2.5 s (gunicorn's gthread worker: 2 s) does not make a
// POST fail 502 when it arrives after such a pause. A request with a body
// is never retried (it streams and may not be replayed), so the pool must
// drop idle connections before the upstream does (UpstreamIdleTimeout,
// default 1 s). Neither does a connection the upstream closed mark that
// upstream down.
func TestUpstreamShortKeepAlive(t *testing.T) {
	var hits atomic.Int64
	up := countingUpstream(&hits)
	// Well past the gateway's 1 s (fasthttp sweeps idle connections as the
	// oldest one's time runs out): the gateway's side is gone before the
	// upstream closes its own.
	up.Config.IdleTimeout = 2500 * time.Millisecond
	up.Start()
	defer up.Close()
	e := newEnv(t, envOptions{upstreams: []string{up.URL}})
	post := func() *rawResponse {
		raw := strings.Replace(reqText("POST", "/api/things", "X-API-Key", e.fix.Token("limited")),
			"Connection: close\r\n", "Content-Length: 5\r\n", 1) + "hello"
		return e.do(directPeer, raw)
	}
	if r := post(); r.status != 200 {
		t.Fatalf("first POST: %d %s", r.status, r.body)
	}
	time.Sleep(2800 * time.Millisecond) // the upstream has closed its side
	if r := post(); r.status != 200 {
		t.Fatalf("POST after the upstream's keep-alive timeout: %d %s", r.status, r.body)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("upstream served %d requests, want 2", n)
	}
}

// TestClosedKeepAliveNotMarkedDown: a POST that went out on a pooled
// connection the upstream had closed fails 502 (it is not retried), but the
// upstream is not marked down for it: the next requests still reach it.
func TestClosedKeepAliveNotMarkedDown(t *testing.T) {
	var hits atomic.Int64
	addr := testproc.ServeConns(t, func(c net.Conn) { // one answer per connection, without saying so
		buf := make([]byte, 4096)
		c.Read(buf)
		hits.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	other := startEcho(t)
	e := newEnv(t, envOptions{
		upstreams: []string{"http://" + addr, "http://" + other.addr},
		mutate:    func(c *Config) { c.UpstreamIdleTimeout = time.Minute },
		fixture:   unlimitClient("limited"), // any method, no limit
	})
	send := func(method string) int {
		raw := strings.Replace(reqText(method, "/api/things", "X-API-Key", e.fix.Token("limited")),
			"Connection: close\r\n", "Content-Length: 5\r\n", 1) + "hello"
		if method == "GET" {
			raw = strings.Replace(reqText(method, "/api/things", "X-API-Key", e.fix.Token("app")), "Connection: close\r\n", "", 1)
		}
		return e.do(directPeer, raw).status
	}
	// Round robin: the first two POSTs reach each upstream once, the
	// closing one then closes its pooled connection; of the next two, the
	// one to the closing upstream goes out on that closed connection.
	var statuses []int
	for i := 0; i < 4; i++ {
		statuses = append(statuses, send("POST"))
		time.Sleep(20 * time.Millisecond)
	}
	if slices.Index(statuses, 502) < 2 || slices.Contains(statuses[:2], 502) {
		t.Fatalf("POST statuses %v: want the third or fourth 502 (sent on the closed connection, not retried)", statuses)
	}
	before := hits.Load()
	for i := 0; i < 4; i++ {
		if got := send("GET"); got != 200 {
			t.Fatalf("GET %d: %d", i, got)
		}
	}
	if hits.Load() == before {
		t.Errorf("no request reached the upstream whose keep-alive connection was closed: it was marked down")
	}
}

// TestUpstreamLargeResponseHeaders: an upstream's response header block is
// read up to SCOPEGATE_MAX_HEADER_BYTES (a long Content-Security-Policy or
// a few JWT cookies fit; fasthttp's own default is 4 KiB); a larger one is
// 502 upstream_unavailable whose log line carries none of the upstream's
// header text (cookies), and it does not mark the upstream down.
func TestUpstreamLargeResponseHeaders(t *testing.T) {
	var hits atomic.Int64
	addr := testproc.ServeConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			hits.Add(1)
			n, _ := strconv.Atoi(req.URL.Query().Get("n"))
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nSet-Cookie: session=%s\r\nContent-Length: 2\r\n\r\nok", strings.Repeat("s", n))
		}
	})
	var logs syncbuf.Buffer
	e := newEnv(t, envOptions{
		upstreams: []string{"http://" + addr},
		mutate: func(c *Config) {
			c.MaxHeaderBytes = 16 << 10
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		},
	})
	get := func(n int) *rawResponse {
		return e.do(directPeer, reqText("GET", "/api/things?n="+strconv.Itoa(n), "X-API-Key", e.fix.Token("app")))
	}
	if r := get(10000); r.status != 200 || len(r.header.Get("Set-Cookie")) < 10000 {
		t.Fatalf("10 KB of response headers: %d %s", r.status, r.body)
	}
	if r := get(20000); r.status != 502 || r.reason() != "upstream_unavailable" {
		t.Fatalf("20 KB of response headers: %d %s, want 502 upstream_unavailable", r.status, r.body)
	}
	if !strings.Contains(logs.String(), "upstream request failed") || strings.Contains(logs.String(), "sssss") {
		t.Errorf("want the failure logged without the upstream's header text:\n%.600s", logs.String())
	}

	// Beside a second upstream, the one that sent too large a header
	// block is not skipped afterwards.
	two := newEnv(t, envOptions{upstreams: []string{"http://" + addr, "http://" + startEcho(t).addr}})
	statuses := map[int]int{}
	for i := 0; i < 2; i++ {
		statuses[two.do(directPeer, reqText("GET", "/api/things?n=20000", "X-API-Key", two.fix.Token("app"))).status]++
	}
	if statuses[502] != 1 || statuses[200] != 1 {
		t.Fatalf("statuses %v, want one 502 and one 200", statuses)
	}
	before := hits.Load()
	for i := 0; i < 4; i++ {
		two.do(directPeer, reqText("GET", "/api/things?n=10", "X-API-Key", two.fix.Token("app")))
	}
	if hits.Load() == before {
		t.Errorf("after one oversized header block the upstream was marked down")
	}
}

// TestClientBodyErrorsAreTheClients: a request body the client botches
// (malformed chunk framing) or stops sending (past SCOPEGATE_READ_TIMEOUT)
// is answered 400 or 408 bad_request, not 502/504 as if the upstream had
// failed, and does not mark the upstream down: an allowed client cannot
// steer traffic away from an upstream.
func TestClientBodyErrorsAreTheClients(t *testing.T) {
	// Only GETs are counted: the botched POST's headers and first bytes
	// may reach the upstream, whose handler then runs on its own time,
	// possibly after the gateway has answered the client.
	var hits atomic.Int64
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			hits.Add(1)
		}
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	defer first.Close()
	e := newEnv(t, envOptions{
		upstreams: []string{first.URL, "http://" + startEcho(t).addr},
		mutate:    func(c *Config) { c.ReadTimeout = 500 * time.Millisecond },
		fixture:   unlimitClient("limited"),
	})
	head := func(framing string) string {
		return strings.Replace(reqText("POST", "/api/things", "X-API-Key", e.fix.Token("limited")),
			"Connection: close\r\n", framing, 1)
	}
	cases := []struct {
		name, raw string
		status    int
	}{
		{"malformed chunk size", head("Transfer-Encoding: chunked\r\n") + "zz\r\nhello\r\n0\r\n\r\n", 400},
		{"body stops short", head("Content-Length: 100000\r\n") + strings.Repeat("x", 20000), 408},
		{"client closes mid-body", head("Content-Length: 100000\r\n") + strings.Repeat("x", 20000) + halfClose, 400},
	}
	get := func() { e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"))) }
	for _, c := range cases {
		// Round robin starts at the second upstream: the bad body goes to
		// the first, then four requests alternate again.
		get()
		r := e.do(directPeer, c.raw)
		if r.status != c.status || r.reason() != "bad_request" {
			t.Errorf("%s: %d %s, want %d bad_request", c.name, r.status, r.body, c.status)
		}
		before := hits.Load()
		for i := 0; i < 4; i++ {
			get()
		}
		if got := hits.Load() - before; got != 2 {
			t.Errorf("%s: the first upstream served %d of the next 4 requests, want 2 (not marked down)", c.name, got)
		}
	}
}

// TestUpstreamUnaskedSwitchingProtocols: the gateway never forwards an
// Upgrade, so a 101 from the upstream (also after an interim 103, also over
// TLS) is a broken answer: 502 upstream_unavailable, and the connection it
// came on never carries another request (it would go into the upstream's
// tunnel, the next client's identity headers with it).
func TestUpstreamUnaskedSwitchingProtocols(t *testing.T) {
	var captured, switches atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "switch") {
			switches.Add(1)
		}
		var answer string
		switch r.URL.Path {
		case "/api/switch":
			answer = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-tunnel\r\n\r\n"
		case "/api/hints-switch":
			answer = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: x-tunnel\r\n\r\n"
		case "/api/crlf-switch": // fasthttp skips empty lines before a status line
			answer = "\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"
		case "/api/spaces-switch": // and takes several spaces before the code
			answer = "HTTP/1.1  101 Switching Protocols\r\n\r\n"
		case "/api/wide-switch": // past what the scan reads: forward's fallback
			answer = "HTTP/1.1" + strings.Repeat(" ", 40) + "101 Switching Protocols\r\n\r\n"
		case "/api/stray-switch":
			answer = "HTTP/1.1 103 Early Hints\r\n\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"
		default:
			io.WriteString(w, "ok")
			return
		}
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString(answer)
		brw.Flush()
		// The tunnel: whatever comes next is captured.
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := http.ReadRequest(brw.Reader); err == nil {
			captured.Add(1)
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ncaptured")
		}
	})
	plain, secure := httptest.NewServer(handler), httptest.NewTLSServer(handler)
	defer plain.Close()
	defer secure.Close()
	roots := x509.NewCertPool()
	roots.AddCert(secure.Certificate())
	for _, up := range []*httptest.Server{plain, secure} {
		var logs syncbuf.Buffer
		e := newEnv(t, envOptions{upstreams: []string{up.URL}, mutate: func(c *Config) {
			c.UpstreamRootCAs = roots
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		}})
		keepAlive := func(path string) string {
			return strings.Replace(reqText("GET", path, "X-API-Key", e.fix.Token("app")), "Connection: close\r\n", "", 1)
		}
		if r := e.do(directPeer, keepAlive("/api/things")); r.status != 200 || string(r.body) != "ok" {
			t.Fatalf("%s: plain request: %d %s", up.URL, r.status, r.body)
		}
		for _, path := range []string{"/api/switch", "/api/hints-switch", "/api/crlf-switch", "/api/spaces-switch", "/api/stray-switch", "/api/wide-switch"} {
			before := switches.Load()
			if r := e.do(directPeer, keepAlive(path)); r.status != 502 || r.reason() != "upstream_unavailable" {
				t.Errorf("%s%s: %d %s, want 502 upstream_unavailable", up.URL, path, r.status, r.body)
			}
			if n := switches.Load() - before; n != 1 {
				t.Errorf("%s%s: sent %d times, want once (a 101 is not a stale connection to retry)", up.URL, path, n)
			}
			for i := 0; i < 3; i++ {
				if r := e.do(directPeer, keepAlive("/api/next")); r.status != 200 || string(r.body) != "ok" {
					t.Errorf("%s: request %d after %s: %d %q", up.URL, i, path, r.status, r.body)
				}
			}
		}
		if !strings.Contains(logs.String(), "101 Switching Protocols") {
			t.Errorf("%s: the 101 was not logged as such:\n%.600s", up.URL, logs.String())
		}
	}
	if n := captured.Load(); n != 0 {
		t.Errorf("%d later requests went into the upstream's tunnel", n)
	}
}

// TestUpstreamTricklingHeadersTimeOut: SCOPEGATE_UPSTREAM_TIMEOUT bounds
// the whole wait for the answer's header block, not each read: an upstream
// that trickles header bytes (or interim 1xx answers) is 504
// upstream_timeout.
func TestUpstreamTricklingHeadersTimeOut(t *testing.T) {
	addr := testproc.ServeConns(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		for i := 0; i < 50; i++ {
			time.Sleep(50 * time.Millisecond)
			if _, err := io.WriteString(c, "X"); err != nil {
				return
			}
		}
	})
	e := newEnv(t, envOptions{upstreams: []string{"http://" + addr}, upstreamTimeout: 300 * time.Millisecond})
	start := time.Now()
	r := e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app")))
	if r.status != 504 || r.reason() != "upstream_timeout" {
		t.Fatalf("trickling headers: %d %s, want 504 upstream_timeout", r.status, r.body)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("answered after %v, want about the 300ms timeout", took)
	}
}

// TestUpstreamDroppingNewConnectionsMarkedDown: an upstream that accepts
// connections and drops them before answering (a sidecar whose app is
// down, a crash loop) fails requests on fresh connections, so it is marked
// down and the next requests go to the other upstream.
func TestUpstreamDroppingNewConnectionsMarkedDown(t *testing.T) {
	addr := testproc.ServeConns(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
	})
	e := newEnv(t, envOptions{upstreams: []string{"http://" + addr, "http://" + startEcho(t).addr}})
	var statuses []int
	for i := 0; i < 6; i++ {
		statuses = append(statuses, e.do(directPeer, reqText("GET", "/api/things", "X-API-Key", e.fix.Token("app"))).status)
	}
	failed := 0
	for _, s := range statuses {
		if s != 200 {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("statuses %v: want one failure, then the dropping upstream skipped", statuses)
	}
}

// countingUpstream is an unstarted upstream that counts its requests in
// hits, reads each body and answers "ok".
func countingUpstream(hits *atomic.Int64) *httptest.Server {
	return httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
}

// unlimitClient drops the rate limit of a fixture client.
func unlimitClient(key string) func(*storetest.Fixture) {
	return func(f *storetest.Fixture) {
		for i := range f.Clients {
			if f.Clients[i].ClientKey == key {
				f.Clients[i].RateLimitPerMin = nil
			}
		}
	}
}

// TestAnswerFramingPerClientVersion: an answer of unknown length reaches an
// HTTP/1.0 client with a Content-Length (it has no chunked framing, RFC 9112
// §6.1), and an HTTP/1.0 upstream's close-delimited answer reaches an
// HTTP/1.1 client under an HTTP/1.1 status line, so its chunked framing is
// read as such.
func TestAnswerFramingPerClientVersion(t *testing.T) {
	addr := testproc.ServeConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		switch req.URL.Path {
		case "/api/old":
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from 1.0")
		default:
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n chunk\r\n0\r\n\r\n")
		}
	})
	e := newEnv(t, envOptions{upstreams: []string{"http://" + addr}})
	key := e.fix.Token("app")

	r := e.do(directPeer, "GET /api/chunked HTTP/1.0\r\nHost: gw.test\r\nX-API-Key: "+key+"\r\n\r\n")
	if r.status != 200 || string(r.body) != "hello chunk" {
		t.Fatalf("HTTP/1.0 client, chunked answer: %d %q", r.status, r.body)
	}
	if len(r.te) != 0 || r.length != 11 {
		t.Errorf("HTTP/1.0 client got Transfer-Encoding %q, Content-Length %d; want no chunking and 11", r.te, r.length)
	}

	r = e.do(directPeer, reqText("GET", "/api/old", "X-API-Key", key))
	if r.status != 200 || string(r.body) != "hello from 1.0" {
		t.Errorf("HTTP/1.1 client, HTTP/1.0 upstream: %d %q", r.status, r.body)
	}
}

// TestUpstreamCloseKeepsClientConnection: an upstream answering with
// Connection: close (or a close-delimited body) closes its own connection,
// never reused, while the client's keep-alive connection stays open for its
// next request, as nginx and Envoy do.
func TestUpstreamCloseKeepsClientConnection(t *testing.T) {
	var conns atomic.Int64
	addr := testproc.ServeConns(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for served := 0; ; served++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if served > 0 {
				// It said close but did not close: a gateway that pooled
				// the connection anyway gets this.
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nreused")
				continue
			}
			if req.URL.Path == "/api/old" {
				io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nold") // ended by the close
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	e := newEnv(t, envOptions{upstreams: []string{"http://" + addr}})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	key := e.fix.Token("app")
	for i, path := range []string{"/api/a", "/api/old", "/api/b"} {
		io.WriteString(c, strings.Replace(reqText("GET", path, "X-API-Key", key), "Connection: close\r\n", "", 1))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d (%s) on the kept connection: %v", i, path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close || string(body) == "reused" {
			t.Fatalf("request %d (%s): %d %q, close %v; want 200 and the connection kept", i, path, resp.StatusCode, body, resp.Close)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("the upstream saw %d connections for 3 requests it closed after each, want 3", n)
	}
}

// TestSlowUploadThenPromptAnswer: SCOPEGATE_UPSTREAM_TIMEOUT counts the wait
// for the answer from the request's last byte, so an upload that takes
// longer than the timeout, answered at once, is not a 504.
func TestSlowUploadThenPromptAnswer(t *testing.T) {
	var hits atomic.Int64
	up := countingUpstream(&hits)
	up.Start()
	defer up.Close()
	e := newEnv(t, envOptions{upstreams: []string{up.URL}, upstreamTimeout: 300 * time.Millisecond, fixture: unlimitClient("limited")})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	const chunk, chunks = 20 << 10, 10
	io.WriteString(c, strings.Replace(reqText("POST", "/api/upload", "X-API-Key", e.fix.Token("limited")),
		"Connection: close\r\n", "Content-Length: "+strconv.Itoa(chunk*chunks)+"\r\n", 1))
	for i := 0; i < chunks; i++ { // 600 ms in all, twice the timeout
		time.Sleep(60 * time.Millisecond)
		c.Write(make([]byte, chunk))
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || hits.Load() != 1 {
		t.Fatalf("slow upload: %d, upstream hits %d; want 200 and 1", resp.StatusCode, hits.Load())
	}
}

// TestHTTP10EndlessStream: an answer of unknown length that does not end
// (an event stream) cannot be buffered for an HTTP/1.0 client: 502 after
// SCOPEGATE_UPSTREAM_TIMEOUT, not a request held for as long as it runs.
// HEAD gets no Transfer-Encoding either.
func TestHTTP10EndlessStream(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 100 && r.Context().Err() == nil; i++ {
			io.WriteString(w, ": ping\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}))
	defer up.Close()
	e := newEnv(t, envOptions{upstreams: []string{up.URL}, upstreamTimeout: 400 * time.Millisecond})
	start := time.Now()
	r := e.do(directPeer, "GET /api/events HTTP/1.0\r\nHost: gw.test\r\nX-API-Key: "+e.fix.Token("app")+"\r\n\r\n")
	if r.status != 502 || r.reason() != "upstream_unavailable" {
		t.Errorf("HTTP/1.0 client, endless stream: %d %s, want 502", r.status, r.body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("answered after %v, want about the 400ms timeout", took)
	}

	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "HEAD /api/events HTTP/1.0\r\nHost: gw.test\r\nX-API-Key: "+e.fix.Token("app")+"\r\n\r\n")
	head, _ := io.ReadAll(c) // HTTP/1.0: the gateway closes after the answer
	if !strings.HasPrefix(string(head), "HTTP/1.1 200") || strings.Contains(strings.ToLower(string(head)), "transfer-encoding") {
		t.Errorf("HEAD from an HTTP/1.0 client: %q", head)
	}
}
