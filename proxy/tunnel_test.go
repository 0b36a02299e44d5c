package proxy

// Upgrade tunnels (SPEC §10) with a real WebSocket client and echo
// upstream (gorilla/websocket) over loopback.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/policy"
	"github.com/scopegate/scopegate/store"
)

// wsEcho is a WebSocket upstream echoing every message; other requests get
// 200 "plain".
func wsEcho(t testing.TB) string {
	t.Helper()
	up := websocket.Upgrader{ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			io.WriteString(w, "plain")
			return
		}
		c, err := up.Upgrade(w, r, http.Header{"X-Upstream-Secret": {"hop"}})
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(64 << 20)
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// wsDial opens a WebSocket through the gateway with the API key of client.
func wsDial(t testing.TB, e *env, path string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
	return d.Dial("ws://"+e.addr+path, h)
}

func keyHeader(e *env, client string) http.Header {
	return http.Header{"X-Api-Key": {e.fix.Token(client)}}
}

func echoRoundTrip(t testing.TB, c *websocket.Conn, msg []byte) {
	t.Helper()
	if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes came back as %d different bytes", len(msg), len(got))
	}
}

// TestTunnelEcho: messages both ways, large frames, many tunnels at once;
// the 101 carries the upstream's Sec-WebSocket-Accept and X-Request-Id but
// none of its other fields.
func TestTunnelEcho(t *testing.T) {
	e := newEnv(t, envOptions{upstreams: []string{wsEcho(t)}})
	t.Cleanup(e.proxy.CloseTunnels)
	c, resp, err := wsDial(t, e, "/api/ws", keyHeader(e, "app"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Upstream-Secret") != "" {
		t.Errorf("101 header: %v", resp.Header)
	}
	for _, n := range []int{1, 125, 126, 65535, 65536, 4 << 20} {
		echoRoundTrip(t, c, bytes.Repeat([]byte{byte(n)}, n))
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if mt, msg, err := c.ReadMessage(); err != nil || mt != websocket.TextMessage || string(msg) != "hello" {
		t.Fatalf("text echo: %d %q %v", mt, msg, err)
	}
	c.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := wsDial(t, e, "/api/ws", keyHeader(e, "app"))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < 20; j++ {
				msg := []byte(fmt.Sprintf("tunnel %d message %d", i, j))
				if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
					errs <- err
					return
				}
				if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("tunnel %d: %q %v", i, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// handshake is a raw WebSocket handshake for path with extra header lines.
func handshake(path string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, l := range extra {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestTunnelNoByteBefore101: bytes the client sends right behind its
// handshake reach the upstream only after its 101, first and in order.
func TestTunnelNoByteBefore101(t *testing.T) {
	early := make(chan int, 1)
	got := make(chan string, 1)
	addr := testproc.ServeConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		time.Sleep(300 * time.Millisecond) // the client's bytes would be here by now
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, _ := br.Read(make([]byte, 64))
		early <- n
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		b := make([]byte, 12)
		if _, err := io.ReadFull(br, b); err == nil {
			got <- string(b)
		}
	})
	e := newEnv(t, envOptions{upstreams: []string{"http://" + addr}})
	t.Cleanup(e.proxy.CloseTunnels)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, handshake("/api/ws", "X-API-Key: "+e.fix.Token("app"))+"first-second")
	if n := <-early; n != 0 {
		t.Fatalf("the upstream read %d bytes before its 101", n)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake answer: %v %v", resp, err)
	}
	select {
	case s := <-got:
		if s != "first-second" {
			t.Fatalf("upstream got %q after its 101", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client's early bytes never reached the upstream")
	}
}

// TestTunnelOnlyOn101WebSocket: an upstream that answers an upgrade with
// anything but 101 + Upgrade: websocket gets no tunnel: a 403 or a 200
// (CVE-2024-23326) is relayed as an ordinary answer and the connection
// stays HTTP; a 101 to another protocol is 502.
func TestTunnelOnlyOn101WebSocket(t *testing.T) {
	answers := map[string]string{
		"/api/forbidden": "HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope",
		"/api/ok":        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nok",
		"/api/h2c":       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
		"/api/no-conn":   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
	}
	addr := testproc.ServeConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			a, ok := answers[req.URL.Path]
			if !ok {
				a = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain"
			}
			io.WriteString(c, a)
		}
	})
	e := newEnv(t, envOptions{upstreams: []string{"http://" + addr}})
	t.Cleanup(e.proxy.CloseTunnels)
	key := "X-API-Key: " + e.fix.Token("app")
	for _, c := range []struct {
		path   string
		status int
		body   string
	}{
		{"/api/forbidden", 403, "nope"},
		{"/api/ok", 200, "ok"},
		{"/api/h2c", 502, ""},
		{"/api/no-conn", 502, ""},
	} {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		io.WriteString(conn, handshake(c.path, key))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != c.status || c.body != "" && string(body) != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.path, resp.StatusCode, body, c.status, c.body)
		}
		if resp.Header.Get("Upgrade") != "" {
			t.Errorf("%s: the relayed answer carries Upgrade: %q", c.path, resp.Header.Get("Upgrade"))
		}
		if c.status != 502 {
			// Still HTTP: the next request on the connection is parsed
			// and answered as one.
			io.WriteString(conn, reqText("GET", "/api/next", "X-API-Key", e.fix.Token("app")))
			next, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s: next request: %v", c.path, err)
			}
			nb, _ := io.ReadAll(next.Body)
			if next.StatusCode != 200 || string(nb) != "plain" {
				t.Errorf("%s: next request: %d %q", c.path, next.StatusCode, nb)
			}
		}
		conn.Close()
	}
}

// TestTunnelBadHandshakes: a WebSocket handshake that is not valid is 400
// bad_request; CONNECT is 405; an h2c upgrade goes on as plain HTTP/1.1
// without Upgrade and HTTP2-Settings.
func TestTunnelBadHandshakes(t *testing.T) {
	e := newEnv(t, envOptions{fixture: unlimitClient("limited")})
	key := "X-API-Key: " + e.fix.Token("limited")
	base := handshake("/api/ws", key)
	cases := []struct {
		name, raw string
		status    int
	}{
		{"no Sec-WebSocket-Key", strings.Replace(base, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1), 400},
		{"version 12", strings.Replace(base, "Version: 13", "Version: 12", 1), 400},
		{"POST", strings.Replace(base, "GET ", "POST ", 1), 400},
		{"HTTP/1.0", strings.Replace(base, "HTTP/1.1", "HTTP/1.0", 1), 400},
		{"CONNECT", "CONNECT /api/x HTTP/1.1\r\nHost: gw.test\r\n" + key + "\r\n\r\n", 405},
	}
	for _, c := range cases {
		r := e.do(directPeer, c.raw)
		if r.status != c.status || r.reason() != "bad_request" {
			t.Errorf("%s: %d %s, want %d bad_request", c.name, r.status, r.body, c.status)
		}
	}
	key = "X-API-Key: " + e.fix.Token("app")
	r := e.do(directPeer, "GET /api/h2c HTTP/1.1\r\nHost: gw.test\r\n"+key+"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	var got echoed
	if r.status != 200 || json.Unmarshal(r.body, &got) != nil {
		t.Fatalf("h2c: %d %s", r.status, r.body)
	}
	for _, h := range []string{"Upgrade", "Http2-Settings", "Connection"} {
		if v, ok := got.Headers[h]; ok {
			t.Errorf("h2c: the upstream got %s: %v", h, v)
		}
	}
	// HTTP2-Settings not named in Connection goes too.
	r = e.do(directPeer, reqText("GET", "/api/h2c", "X-API-Key", e.fix.Token("app"), "HTTP2-Settings", "AAMAAABkAAQAAP__"))
	if json.Unmarshal(r.body, &got) != nil || got.Headers["Http2-Settings"] != nil {
		t.Errorf("HTTP2-Settings reached the upstream: %s", r.body)
	}
}

// TestTunnelUpstreamFaults: an upstream that drops the handshake is 502,
// one that never answers is 504 within SCOPEGATE_UPSTREAM_TIMEOUT, one
// that nothing listens on is 502; the cap's slot comes back each time.
func TestTunnelUpstreamFaults(t *testing.T) {
	drop := testproc.ServeConns(t, func(c net.Conn) { bufio.NewReader(c).ReadString('\n') })
	silent := testproc.ServeConns(t, func(c net.Conn) { time.Sleep(3 * time.Second) })
	for _, c := range []struct {
		name, addr string
		status     int
		reason     string
	}{
		{"drops", drop, 502, "upstream_unavailable"},
		{"silent", silent, 504, "upstream_timeout"},
		{"refused", deadAddr(t), 502, "upstream_unavailable"},
	} {
		e := newEnv(t, envOptions{upstreams: []string{"http://" + c.addr}, upstreamTimeout: 300 * time.Millisecond,
			mutate: func(cfg *Config) { cfg.MaxTunnels = 1 }})
		for i := 0; i < 2; i++ { // the second would be 503 if the slot leaked
			start := time.Now()
			r := e.do(directPeer, handshake("/api/ws", "X-API-Key: "+e.fix.Token("app")))
			if r.status != c.status || r.reason() != c.reason {
				t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.reason)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("%s: answered after %v", c.name, took)
			}
		}
	}
}

// TestTunnelCapIdleShutdown: past SCOPEGATE_MAX_TUNNELS a handshake is 503
// too_many_tunnels; a tunnel without a byte either way closes after the
// idle timeout (but not while either side talks); CloseTunnels closes
// the rest.
func TestTunnelCapIdleShutdown(t *testing.T) {
	e := newEnv(t, envOptions{upstreams: []string{wsEcho(t)}, mutate: func(c *Config) {
		c.MaxTunnels = 2
		c.TunnelIdleTimeout = 800 * time.Millisecond // 16 times a's pause below
	}})
	t.Cleanup(e.proxy.CloseTunnels)
	a, _, err := wsDial(t, e, "/api/ws", keyHeader(e, "app"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := wsDial(t, e, "/api/ws", keyHeader(e, "app"))
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := wsDial(t, e, "/api/ws", keyHeader(e, "app"))
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("third tunnel: %v %v, want 503", resp, err)
	}
	if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), `"too_many_tunnels"`) {
		t.Errorf("third tunnel: %s", body)
	}
	// a talks every 50 ms for 1.5 s: it stays; b idles and closes.
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		echoRoundTrip(t, a, []byte("ping"))
		time.Sleep(50 * time.Millisecond)
	}
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := b.ReadMessage(); err == nil || isTimeout(err) {
		t.Errorf("idle tunnel not closed: %v", err)
	}
	e.proxy.CloseTunnels()
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := a.ReadMessage(); err == nil || isTimeout(err) {
		t.Errorf("tunnel open after CloseTunnels: %v", err)
	}
	_, resp, err = wsDial(t, e, "/api/ws", keyHeader(e, "app"))
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Errorf("tunnel after CloseTunnels: %v %v, want 503", resp, err)
	}
}

// TestTunnelClosedWhenDenied: an open tunnel closes within 1 s of the
// store change that makes its decision a denial (key revoked, secret
// replaced, user deactivated, grant removed), and at its JWT's exp plus
// leeway; the latency is logged.
func TestTunnelClosedWhenDenied(t *testing.T) {
	up := wsEcho(t)
	aliceSite := "/api/companies/acme/sites/acme-hq/items"
	cases := []struct {
		name   string
		path   string
		header func(e *env) http.Header
		change func(f *storetest.Fixture)
	}{
		{"key revoked", "/api/ws", func(e *env) http.Header { return keyHeader(e, "app") }, func(f *storetest.Fixture) {
			setClientStatus(f, "app", "revoked")
		}},
		{"key suspended", "/api/ws", func(e *env) http.Header { return keyHeader(e, "app") }, func(f *storetest.Fixture) {
			setClientStatus(f, "app", "suspended")
		}},
		{"secret replaced", "/api/ws", func(e *env) http.Header { return keyHeader(e, "app") }, func(f *storetest.Fixture) {
			for i := range f.Clients {
				if f.Clients[i].ClientKey == "app" {
					f.Clients[i].APIKeyHash = storetest.HashSecret("another-secret")
				}
			}
		}},
		{"user deactivated", aliceSite, jwtHeader, func(f *storetest.Fixture) {
			for i := range f.Users {
				if f.Users[i].Sub == "alice" {
					f.Users[i].IsActive = false
				}
			}
		}},
		{"grant removed", aliceSite, jwtHeader, func(f *storetest.Fixture) {
			f.Grants = f.Grants[:0]
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{upstreams: []string{up}})
			t.Cleanup(e.proxy.CloseTunnels)
			ws := openTunnel(t, e, c.path, c.header(e))
			echoRoundTrip(t, ws, []byte("before"))
			f := e.fix
			f.Clients = append([]policy.ClientRecord(nil), f.Clients...)
			f.Users = append([]policy.UserRecord(nil), f.Users...)
			f.Grants = append([]storetest.Grant(nil), f.Grants...)
			c.change(&f)
			fs := e.store.(*store.File)
			if err := os.WriteFile(fs.Path(), f.YAML(), 0o600); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := fs.Reload(); err != nil {
				t.Fatal(err)
			}
			took := awaitTunnelClosed(t, ws, start, "still open after the change")
			t.Logf("%s: tunnel closed %d ms after the store applied the change", c.name, took.Milliseconds())
			if took > time.Second {
				t.Errorf("closed after %v, want within 1 s", took)
			}
		})
	}
	t.Run("key expires", func(t *testing.T) {
		// Nothing in the store changes when expires_at passes: a timer.
		// The expiry is set as the store is written, 1.5 s ahead: the
		// rest of the set-up and the tunnel's opening come before it even
		// on a loaded machine.
		var soon time.Time
		e := newEnv(t, envOptions{upstreams: []string{up}, fixture: func(f *storetest.Fixture) {
			soon = time.Now().Add(1500 * time.Millisecond)
			for i := range f.Clients {
				if f.Clients[i].ClientKey == "app" {
					f.Clients[i].ExpiresAt = &soon
				}
			}
		}})
		t.Cleanup(e.proxy.CloseTunnels)
		ws := openTunnel(t, e, "/api/ws", keyHeader(e, "app"))
		late := awaitTunnelClosed(t, ws, soon, "open past expires_at")
		t.Logf("key expires: tunnel closed %d ms after expires_at", late.Milliseconds())
		if late > time.Second {
			t.Errorf("closed %v after expires_at, want within 1 s", late)
		}
	})
	t.Run("JWT expired", func(t *testing.T) {
		e := newEnv(t, envOptions{upstreams: []string{up}})
		t.Cleanup(e.proxy.CloseTunnels)
		// exp 28 s ago (whole seconds): accepted for 1–2 s more (the default 30 s leeway).
		tok := jwtFor(t, "alice", -28*time.Second)
		ws := openTunnel(t, e, aliceSite, http.Header{"Authorization": {"Bearer " + tok}})
		took := awaitTunnelClosed(t, ws, time.Now(), "open past exp + leeway")
		t.Logf("JWT expired: tunnel closed %d ms after opening (1–2 s of leeway left)", took.Milliseconds())
	})
}

// openTunnel dials a tunnel (failing the test when that does not work)
// and closes it when the test ends.
func openTunnel(t *testing.T, e *env, path string, h http.Header) *websocket.Conn {
	t.Helper()
	ws, _, err := wsDial(t, e, path, h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// awaitTunnelClosed reads from ws until the gateway closes the tunnel and
// returns how long after since that was; the test fails when the tunnel is
// still open after 3 s ("tunnel <open>: ...").
func awaitTunnelClosed(t *testing.T, ws *websocket.Conn, since time.Time, open string) time.Duration {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, _, err := ws.ReadMessage()
	took := time.Since(since)
	if err == nil || isTimeout(err) {
		t.Fatalf("tunnel %s: %v", open, err)
	}
	return took
}

func jwtHeader(e *env) http.Header {
	return http.Header{"Authorization": {"Bearer " + jwtFor(e.t, "alice", time.Hour)}}
}

func setClientStatus(f *storetest.Fixture, key, status string) {
	for i := range f.Clients {
		if f.Clients[i].ClientKey == key {
			f.Clients[i].Status = status
		}
	}
}

// TestTunnelNoLeak: after 1,000 tunnels opened and closed (by either
// side), the gateway holds no more goroutines or descriptors than before.
func TestTunnelNoLeak(t *testing.T) {
	e := newEnv(t, envOptions{upstreams: []string{wsEcho(t)}})
	t.Cleanup(e.proxy.CloseTunnels)
	// A first tunnel starts the watcher and fills the pools.
	warm, _, err := wsDial(t, e, "/api/ws", keyHeader(e, "app"))
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, warm, []byte("warm"))
	warm.Close()
	waitFor(t, "the warm-up tunnel to close", func() bool { return e.proxy.tun.n.Load() == 0 })
	goroutines, fds := runtime.NumGoroutine(), openFDs()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := wsDial(t, e, "/api/ws", keyHeader(e, "app"))
			if err != nil {
				t.Error(err)
				return
			}
			echoRoundTrip(t, c, []byte("x"))
			if i%2 == 0 {
				c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			}
			c.Close()
		}()
	}
	wg.Wait()
	waitFor(t, "every tunnel to close", func() bool { return e.proxy.tun.n.Load() == 0 })
	// fasthttp keeps idle workers for 10 s, so the count to watch is the
	// tunnels' own goroutines (their pumps and hijack handlers), plus the
	// process's descriptors.
	tunnelGoroutines := func() int {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		return bytes.Count(buf, []byte("proxy.(*tunnel)."))
	}
	deadline := time.Now().Add(10 * time.Second)
	for tunnelGoroutines() > 0 || openFDs() > fds+2 {
		if time.Now().After(deadline) {
			t.Fatalf("after 1,000 tunnels: %d tunnel goroutines, %d descriptors (%d before)", tunnelGoroutines(), openFDs(), fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("after 1,000 tunnels: %d goroutines (%d before), %d descriptors (%d before)",
		runtime.NumGoroutine(), goroutines, openFDs(), fds)
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testproc.WaitFor(t, 10*time.Second, what, cond)
}

// TestNginxWebSocket: through a real nginx with the shipped config, a
// handshake is decided by /_auth like any GET (denied without a key,
// allowed with one) and the tunnel carries messages both ways.
func TestNginxWebSocket(t *testing.T) {
	nginxBinary(t)
	e := newEnv(t, envOptions{noUpstream: true, trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	app := strings.TrimPrefix(wsEcho(t), "http://")
	ngx := startNginx(t, e.addr, app)
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if _, resp, err := d.Dial("ws://"+ngx+"/api/ws", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("handshake without a key: %v %v, want 401", resp, err)
	}
	c, resp, err := d.Dial("ws://"+ngx+"/api/ws", http.Header{"X-Api-Key": {e.fix.Token("app")}})
	if err != nil {
		t.Fatalf("handshake through nginx: %v %v", resp, err)
	}
	defer c.Close()
	for _, n := range []int{5, 70000, 1 << 20} {
		echoRoundTrip(t, c, bytes.Repeat([]byte("n"), n))
	}
}

// TestTunnelClosedByChangeFeed: with the PostgreSQL store, an open
// tunnel closes within 1 s of the commit that denies its credential,
// through the change feed (LISTEN/NOTIFY), on every kind of change.
func TestTunnelClosedByChangeFeed(t *testing.T) {
	up := wsEcho(t)
	aliceSite := "/api/companies/acme/sites/acme-hq/items"
	for _, c := range []struct {
		name, path, sql string
		header          func(e *env) http.Header
	}{
		{"key revoked", "/api/ws", `UPDATE api_clients SET status = 'revoked' WHERE client_key = 'app'`, func(e *env) http.Header { return keyHeader(e, "app") }},
		{"key deleted", "/api/ws", `DELETE FROM api_clients WHERE client_key = 'app'`, func(e *env) http.Header { return keyHeader(e, "app") }},
		{"key expired", "/api/ws", `UPDATE api_clients SET expires_at = now() WHERE client_key = 'app'`, func(e *env) http.Header { return keyHeader(e, "app") }},
		{"user deactivated", aliceSite, `UPDATE users SET is_active = false WHERE authentik_sub = 'alice'`, jwtHeader},
		{"grants removed", aliceSite, `DELETE FROM user_scope_permissions`, jwtHeader},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, pool := openPostgresStore(t, storetest.Basic())
			e := newEnv(t, envOptions{store: s, upstreams: []string{up}})
			t.Cleanup(e.proxy.CloseTunnels)
			ws := openTunnel(t, e, c.path, c.header(e))
			echoRoundTrip(t, ws, []byte("before"))
			if _, err := pool.Exec(context.Background(), c.sql); err != nil {
				t.Fatal(err)
			}
			took := awaitTunnelClosed(t, ws, time.Now(), "still open 3 s after the commit")
			t.Logf("%s: tunnel closed %d ms after the commit", c.name, took.Milliseconds())
			if took > time.Second {
				t.Errorf("closed %v after the commit, want within 1 s", took)
			}
		})
	}
}
