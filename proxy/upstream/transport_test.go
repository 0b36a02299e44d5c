package upstream

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
)

// TestTransportBuffersWholeAnswers: an answer whose body came with its
// header block is read into the response (no stream); any other streams,
// its header block returned before its body arrives. Either way the client
// gets the same status and body, and the connection goes back to the pool
// exactly when the answer was read to its end and nobody asked to close:
// the second request of each case reuses it or opens a new one.
func TestTransportBuffersWholeAnswers(t *testing.T) {
	big := strings.Repeat("b", 100_000)
	cases := []struct {
		name        string
		method      string
		head        string // the header block, written first
		body        string // written after it: at once, or once the test let it (late)
		late        bool
		closeUnread bool // the test closes the stream unread
		closes      bool // the upstream closes the connection after the body
		status      int
		want        string
		streamed    bool
		reused      bool
	}{
		{name: "whole", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", body: "hello", status: 200, want: "hello", reused: true},
		{name: "empty", head: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", status: 200, reused: true},
		{name: "body after the header", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", body: "hello", late: true, status: 200, want: "hello", streamed: true, reused: true},
		{name: "body after the header, closed unread", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", body: "hello", late: true, closeUnread: true, status: 200, streamed: true, reused: false},
		{name: "larger than the read buffer", head: "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", body: big, status: 200, want: big, streamed: true, reused: true},
		{name: "chunked, trailer dropped", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n", body: "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n", status: 200, want: "hello", streamed: true, reused: true},
		{name: "HEAD", method: "HEAD", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", status: 200, reused: true},
		{name: "204", head: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, reused: true},
		{name: "interim 100 skipped", head: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n", body: "ok", status: 201, want: "ok", reused: true},
		{name: "upstream closes", head: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n", body: "ok", status: 200, want: "ok", reused: false},
		{name: "to the end of the connection", head: "HTTP/1.1 200 OK\r\n\r\n", body: "until close", closes: true, status: 200, want: "until close", streamed: true, reused: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			url, conns := firstAnswered(t, func(conn net.Conn) bool {
				if !c.late {
					io.WriteString(conn, c.head+c.body)
				} else {
					io.WriteString(conn, c.head)
					<-release
					io.WriteString(conn, c.body)
				}
				return !c.closes
			})
			p, err := New(Config{URLs: []string{url}, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			method := c.method
			if method == "" {
				method = "GET"
			}
			resp, o := doOnce(t, p, method) // returns before a late body is released
			if o != OK || resp.StatusCode() != c.status {
				t.Fatalf("outcome %v, status %d; want OK, %d", o, resp.StatusCode(), c.status)
			}
			if streamed := resp.BodyStream() != nil; streamed != c.streamed {
				t.Errorf("streamed %v, want %v", streamed, c.streamed)
			}
			close(release)
			var body []byte
			switch bs := resp.BodyStream(); {
			case bs == nil:
				body = resp.Body()
			case !c.closeUnread: // (Body would read the stream)
				if body, err = io.ReadAll(bs); err != nil {
					t.Fatalf("reading the stream: %v", err)
				}
			}
			if string(body) != c.want {
				t.Errorf("body %d bytes %.20q, want %d bytes %.20q", len(body), body, len(c.want), c.want)
			}
			if err := resp.CloseBodyStream(); err != nil {
				t.Errorf("closing the stream: %v", err)
			}
			if v := resp.Header.Peek("X-Sum"); len(v) != 0 {
				t.Errorf("the trailer field X-Sum: %s reached the response", v)
			}
			if resp2, o := doOnce(t, p, "GET"); o != OK || string(resp2.Body()) != "ok" {
				t.Fatalf("second request: outcome %v, body %q", o, resp2.Body())
			}
			wantConns := int32(2)
			if c.reused {
				wantConns = 1
			}
			if n := conns.Load(); n != wantConns {
				t.Errorf("%d upstream connections for two requests, want %d (reused %v)", n, wantConns, c.reused)
			}
		})
	}
}

// doOnce sends one request through p and returns its response (released
// at the end of the test).
func doOnce(t *testing.T, p *Pool, method string) (*fasthttp.Response, Outcome) {
	t.Helper()
	var x Exchange
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	t.Cleanup(func() { fasthttp.ReleaseRequest(req); fasthttp.ReleaseResponse(resp) })
	req.Header.SetMethod(method)
	req.SetRequestURI("/things")
	return resp, p.Do(&x, req, resp, time.Now())
}

// firstAnswered serves keep-alive connections on loopback: the first
// request of the test gets first's answer (first reports false to end that
// connection afterwards), every later one "ok". It returns the URL and the
// count of connections accepted.
func firstAnswered(t *testing.T, first func(conn net.Conn) (keep bool)) (string, *atomic.Int32) {
	addr, conns := testproc.FirstAnswered(t, func(c net.Conn, _ *bufio.Reader) bool { return first(c) },
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return "http://" + addr, conns
}
