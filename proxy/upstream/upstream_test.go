package upstream

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
)

// serveConns answers each connection to a loopback listener with handle
// until the test ends, and returns the listener's http:// URL.
func serveConns(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	return "http://" + testproc.ServeConns(t, handle)
}

// answer reads one request and writes raw.
func answer(raw string) func(net.Conn) {
	return func(c net.Conn) {
		if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			io.Copy(io.Discard, req.Body)
			io.WriteString(c, raw)
		}
	}
}

// TestDoOutcomes: each way an exchange can end is named by its Outcome,
// with the upstream tried and the error for the caller's log.
func TestDoOutcomes(t *testing.T) {
	const deadURL = "dead" // replaced below, once every listener is open
	ok := serveConns(t, answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	cases := []struct {
		name     string
		urls     []string
		http10   bool
		body     io.Reader
		bodyLen  int
		want     Outcome
		wantBody string
	}{
		{"answered", []string{ok}, false, nil, 0, OK, "ok"},
		{"dead then answered", []string{deadURL, ok}, false, nil, 0, OK, "ok"},
		{"nothing listens", []string{deadURL}, false, nil, 0, Unavailable, ""},
		{"dropped", []string{serveConns(t, func(c net.Conn) { bufio.NewReader(c).ReadString('\n') })}, false, nil, 0, Unavailable, ""},
		{"silent", []string{serveConns(t, func(c net.Conn) { time.Sleep(time.Second) })}, false, nil, 0, Timeout, ""},
		{"101 unasked", []string{serveConns(t, answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"))}, false, nil, 0, Unavailable, ""},
		{"body too large", []string{ok}, false, strings.NewReader(strings.Repeat("x", 2000)), -1, BodyTooLarge, ""},
		{"body short", []string{ok}, false, strings.NewReader("abc"), 10, BodyMalformed, ""},
		{"HTTP/1.0 client, unsized answer", []string{serveConns(t, answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"))}, true, nil, 0, OK, "hi"},
		{"HTTP/1.0 client, answer too large", []string{serveConns(t, answer("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"+strings.Repeat("y", 2000)))}, true, nil, 0, Unavailable, ""},
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close() // nothing listens there now
	for _, c := range cases {
		for i, u := range c.urls {
			if u == deadURL {
				c.urls[i] = "http://" + dead.Addr().String()
			}
		}
		t.Run(c.name, func(t *testing.T) {
			p, err := New(Config{URLs: c.urls, Timeout: 300 * time.Millisecond, MaxBodyBytes: 1000})
			if err != nil {
				t.Fatal(err)
			}
			var x Exchange
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod("POST")
			req.SetRequestURI("/things")
			if c.http10 {
				req.Header.SetProtocol("HTTP/1.0")
			}
			if c.body != nil {
				req.SetBodyStream(c.body, c.bodyLen)
			}
			got := p.Do(&x, req, resp, time.Now())
			if got != c.want {
				t.Fatalf("outcome %v (err %v), want %v", got, x.Err, c.want)
			}
			if got != OK && (x.Err == nil || x.Upstream == "") {
				t.Errorf("failed without an error or an upstream: %v %q", x.Err, x.Upstream)
			}
			if got == OK {
				body, err := resp.Body(), error(nil)
				if bs := resp.BodyStream(); bs != nil {
					body, err = io.ReadAll(bs)
				}
				if err != nil || string(body) != c.wantBody {
					t.Errorf("body %q (%v), want %q", body, err, c.wantBody)
				}
				_ = resp.CloseBodyStream()
			}
		})
	}
}
