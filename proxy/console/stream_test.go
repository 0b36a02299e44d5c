package console

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
	"github.com/scopegate/scopegate/policy"
)

// serveConsole serves c on a loopback port until the test ends.
func serveConsole(t *testing.T, c *Console) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { c.Serve(ctx) }, WriteTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		c.Close()
		_ = srv.Shutdown()
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// openStream connects, asks for the stream and reads its header block.
func openStream(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GET " + PathStream + " HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("stream answer %q %v", line, err)
	}
	return conn, r
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testproc.WaitFor(t, 10*time.Second, what, cond)
}

func denialEvent(now time.Time) *Event {
	return &Event{Time: now, Status: 401, Reason: policy.ReasonCredentialsMissing, Route: -1, Method: "GET", Path: "/x", RequestID: []byte("r")}
}

// TestStreamVanishedBrowser: a browser that goes away is dropped at the
// next write, and its stream's slot is free again.
func TestStreamVanishedBrowser(t *testing.T) {
	now := time.Now()
	c := testConsole(t, &now)
	addr := serveConsole(t, c)
	conn, _ := openStream(t, addr)
	waitFor(t, "the stream to subscribe", func() bool { return c.subs.count() == 1 })
	conn.Close()
	waitFor(t, "the vanished stream to be dropped", func() bool {
		c.Observe(denialEvent(now)) // a write finds the closed connection
		return c.subs.count() == 0
	})
}

// TestStreamSlowBrowser: a browser that never reads does not slow the
// request path: thousands of denials are recorded at once while its
// connection is full, the ones it cannot take are counted as dropped, and
// a second, reading browser still gets the newest.
func TestStreamSlowBrowser(t *testing.T) {
	now := time.Now()
	c := testConsole(t, &now)
	addr := serveConsole(t, c)
	stuck, _ := openStream(t, addr) // never read
	defer stuck.Close()
	waitFor(t, "the first stream", func() bool { return c.subs.count() == 1 })
	big := &Event{Time: now, Status: 401, Reason: policy.ReasonCredentialsMissing, Route: -1, Method: "GET",
		Path: "/" + strings.Repeat("p", 250), RequestID: []byte(strings.Repeat("r", 200))}
	// ~30 MB of events: more than any socket buffer holds. Were Observe to
	// wait on the stuck connection, the loop would never end; its speed is
	// BenchmarkObserve's, so only that it ends is asserted (a liveness
	// bound, far above any machine's time).
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50000; i++ {
			c.Observe(big)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Observe blocked on a browser that does not read")
	}
	waitFor(t, "drops to be counted", func() bool { return c.subs.dropped.Load() > 0 })

	reader, r := openStream(t, addr)
	defer reader.Close()
	waitFor(t, "the second stream", func() bool { return c.subs.count() == 2 })
	c.Observe(&Event{Time: now, Status: 403, Reason: policy.ReasonNoRoute, Route: -1, Method: "GET", Path: "/last", RequestID: []byte("last-one")})
	_ = reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the second stream: %v", err)
		}
		if strings.Contains(line, `"request_id":"last-one"`) {
			break
		}
	}
}
