package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testproc"
)

// TestProxyStreamsResponse: the upstream's response body reaches the client
// while the upstream is still writing it (not buffered whole).
func TestProxyStreamsResponse(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("a", 64<<10)+"\nFIRST\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "SECOND\n")
	}))
	defer up.Close()
	defer close(release)
	resp, err := getStream(t, envOptions{upstreams: []string{up.URL}})
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("first part not streamed before the upstream finished: %v", err)
		}
		if line == "FIRST\n" {
			break
		}
	}
}

// TestProxySlowBodyOutlivesUpstreamTimeout: SCOPEGATE_UPSTREAM_TIMEOUT bounds
// the wait for the upstream's response headers, not the response: a body
// that keeps streaming past it (a download, server-sent events) reaches the
// client whole.
func TestProxySlowBodyOutlivesUpstreamTimeout(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		// 800 ms of body, in pauses of 50 ms: the whole outlives the
		// 400 ms timeout, no pause comes near it.
		for i := 0; i < 16; i++ {
			io.WriteString(w, "tick\n")
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
		io.WriteString(w, "END\n")
	}))
	defer up.Close()
	resp, err := getStream(t, envOptions{upstreams: []string{up.URL}, upstreamTimeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.HasSuffix(string(body), "END\n") {
		t.Fatalf("body %q, err %v: cut before the upstream finished", body, err)
	}
}

// TestProxyStalledBodyIsCut: a response body that stops for longer than
// SCOPEGATE_UPSTREAM_TIMEOUT is cut there: the client connection closes
// before the declared length (fasthttp may not have flushed the header
// yet), so a hung upstream holds neither the client connection nor the
// handler until the client gives up.
func TestProxyStalledBodyIsCut(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "partial\n")
		w.(http.Flusher).Flush()
		<-release
	}))
	defer up.Close()
	defer close(release)
	start := time.Now()
	resp, err := getStream(t, envOptions{upstreams: []string{up.URL}, upstreamTimeout: 200 * time.Millisecond})
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		if len(body) >= 1000 {
			t.Fatalf("got the whole body %q", body)
		}
	}
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("err %v: want the connection closed, not held", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("cut after %v, want about the 200ms timeout", took)
	}
}

// getStream starts a gateway with o and sends it an allowed GET
// /api/stream on a raw connection (closed at the end of the test, reads
// bounded by 5 s), returning the response as soon as its header is read.
func getStream(t *testing.T, o envOptions) (*http.Response, error) {
	t.Helper()
	_, resp, err := streamOn(t, newEnv(t, o))
	return resp, err
}

// streamOn is getStream on the gateway of e; it also returns the client's
// connection.
func streamOn(t *testing.T, e *env) (net.Conn, *http.Response, error) {
	t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, reqText("GET", "/api/stream", "X-API-Key", e.fix.Token("app")))
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	return c, resp, err
}

// TestProxyFlushesHeadersOfOpenEndedResponses: a response of unknown length
// (chunked: server-sent events, long polls) has its status line and headers
// sent to the client at once, not held until the first body bytes.
func TestProxyFlushesHeadersOfOpenEndedResponses(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: hi\n\n")
	}))
	defer up.Close()
	defer close(release)
	start := time.Now()
	resp, err := getStream(t, envOptions{upstreams: []string{up.URL}})
	if err != nil {
		t.Fatalf("no status line while the upstream holds its first event: %v", err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	t.Logf("headers after %v", time.Since(start).Round(time.Millisecond))
}

// TestProxyClientGoneMidStreamClosesUpstream: a client that disconnects
// while a sized answer streams makes the gateway close that upstream
// connection at once, mid-body: it is never pooled (its next bytes would
// be read as the next request's answer), and the next request opens a new
// one and gets its own answer.
func TestProxyClientGoneMidStreamClosesUpstream(t *testing.T) {
	proceed := make(chan struct{})
	fate := make(chan string, 1) // what became of the first connection
	addr, conns := testproc.FirstAnswered(t, func(c net.Conn, br *bufio.Reader) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("a", 64<<10))
		<-proceed // the client has left: the next bytes fail its write
		io.WriteString(c, strings.Repeat("a", 256<<10))
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := http.ReadRequest(br)
		var ne net.Error
		switch {
		case err == nil:
			fate <- "reused mid-body: another request came on it"
		case errors.As(err, &ne) && ne.Timeout():
			fate <- "left open (pooled?)"
		default:
			fate <- "closed"
		}
		return false
	}, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond")
	e := newEnv(t, envOptions{
		upstreams:       []string{"http://" + addr},
		upstreamTimeout: 5 * time.Second,
		mutate:          func(c *Config) { c.UpstreamIdleTimeout = time.Minute },
	})
	c, resp, err := streamOn(t, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, resp.Body, 1000); err != nil {
		t.Fatal(err)
	}
	c.Close() // the client leaves mid-body
	close(proceed)
	// The gateway's write to the departed client fails: it must close the
	// upstream connection at once (a pooled one would wait 3 s for a
	// request: "left open"), and the next request gets its own answer.
	if f := <-fate; f != "closed" {
		t.Fatalf("the first upstream connection was %s, want closed", f)
	}
	_, resp2, err := streamOn(t, e)
	if err != nil {
		t.Fatal(err)
	}
	if body, _ := io.ReadAll(resp2.Body); string(body) != "second" {
		t.Errorf("second answer %.40q, want \"second\"", body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d upstream connections, want 2", n)
	}
}
