package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestTransportCloseWhileReadBlocked: a Close from another goroutine while
// a Read waits for body bytes that never come ends the Read at once,
// returns promptly, closes the connection (its slot in the pool freed) and
// never pools it.
func TestTransportCloseWhileReadBlocked(t *testing.T) {
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	url, conns := firstAnswered(t, func(conn net.Conn) bool {
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
		<-hold // "llo" never comes while the test runs
		return false
	})
	p, err := New(Config{URLs: []string{url}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resp, o := doOnce(t, p, "GET")
	if o != OK {
		t.Fatalf("outcome %v", o)
	}
	bs := resp.BodyStream()
	if bs == nil {
		t.Fatal("not streamed")
	}
	var got [8]byte
	if n, err := io.ReadFull(bs, got[:2]); n != 2 || err != nil {
		t.Fatalf("first bytes: %d, %v", n, err)
	}
	readDone := make(chan error, 1)
	go func() {
		_, err := bs.Read(got[:]) // blocks: nothing more comes
		readDone <- err
	}()
	// Give the Read time to block: if the Close comes first, the Read gets
	// io.ErrClosedPipe and the assertions below hold all the same.
	time.Sleep(100 * time.Millisecond)
	closeDone := make(chan struct{})
	go func() {
		_ = bs.(fasthttp.ReadCloserWithError).CloseWithError(nil)
		close(closeDone)
	}()
	select {
	case <-closeDone:
	case <-time.After(2 * time.Second):
		t.Fatal("CloseWithError still waits for the blocked Read")
	}
	select {
	case err := <-readDone:
		if err == nil {
			t.Error("the blocked Read returned no error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the blocked Read did not return")
	}
	if _, err := bs.Read(got[:]); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Read after close: %v, want io.ErrClosedPipe", err)
	}
	_ = resp.CloseBodyStream() // a second close does nothing
	if n := p.upstreams[0].hc.ConnsCount(); n != 0 {
		t.Errorf("%d connections counted after the close, want 0", n)
	}
	if resp2, o := doOnce(t, p, "GET"); o != OK || string(resp2.Body()) != "ok" {
		t.Fatalf("second request: outcome %v, body %q", o, resp2.Body())
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d upstream connections, want 2 (the closed one not reused)", n)
	}
}

// TestTransportMoreFramings: cases TestTransportBuffersWholeAnswers lacks.
// The upstream never closes a connection by itself here, so a connection
// pooled when it should not be is seen being reused.
func TestTransportMoreFramings(t *testing.T) {
	cases := []struct {
		name     string
		head     string
		body     string // written after the test read the header block
		closeErr error  // the stream is read whole, then closed with it
		closes   bool   // the upstream closes the connection after the body
		status   int
		want     string
		wantErr  bool
		reused   bool
	}{
		{name: "streamed, upstream asks to close", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", body: "hello", status: 200, want: "hello"},
		{name: "chunked streamed, upstream asks to close", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", body: "5\r\nhello\r\n0\r\n\r\n", status: 200, want: "hello"},
		{name: "304 with Content-Length", head: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", status: 304, reused: true},
		{name: "204 with Content-Length", head: "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", status: 204, reused: true},
		{name: "two interim answers", head: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", body: "ok", status: 200, want: "ok", reused: true},
		{name: "read whole, closed with an error", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", body: "hello", closeErr: errors.New("client gone"), status: 200, want: "hello"},
		{name: "to the end of the connection, an Upgrade answer", head: "HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n", body: "until close", closes: true, status: 200, want: "until close"},
		{name: "chunked, no CRLF after the last chunk's data", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", body: "5\r\nhelloXX", status: 200, want: "hello", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			url, conns := firstAnswered(t, func(conn net.Conn) bool {
				io.WriteString(conn, c.head)
				if c.body != "" {
					<-release
					io.WriteString(conn, c.body)
				}
				return !c.closes
			})
			p, err := New(Config{URLs: []string{url}, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			resp, o := doOnce(t, p, "GET")
			close(release)
			if o != OK || resp.StatusCode() != c.status {
				t.Fatalf("outcome %v, status %d; want OK, %d", o, resp.StatusCode(), c.status)
			}
			var body []byte
			if bs := resp.BodyStream(); bs != nil {
				body, err = io.ReadAll(bs)
				if (err != nil) != c.wantErr {
					t.Errorf("reading the stream: %v (want an error: %v)", err, c.wantErr)
				}
				cerr := c.closeErr
				if cerr == nil {
					cerr = err
				}
				_ = bs.(fasthttp.ReadCloserWithError).CloseWithError(cerr)
			} else {
				body = resp.Body()
			}
			if string(body) != c.want {
				t.Errorf("body %q, want %q", body, c.want)
			}
			_ = resp.CloseBodyStream()
			// POST: not retried, so a dead pooled connection would show.
			if resp2, o := doOnce(t, p, "POST"); o != OK || string(resp2.Body()) != "ok" {
				t.Fatalf("second request: outcome %v, body %q", o, resp2.Body())
			}
			want := int32(2)
			if c.reused {
				want = 1
			}
			if n := conns.Load(); n != want {
				t.Errorf("%d upstream connections for two requests, want %d", n, want)
			}
		})
	}
}

// TestTransportLeavesNoConnection: after many exchanges of every kind, each
// ended by its reader, no connection is counted as in use.
func TestTransportLeavesNoConnection(t *testing.T) {
	answers := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("b", 100000),
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	}
	var next atomic.Int32
	url := serveConns(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			a := answers[int(next.Add(1))%len(answers)]
			io.WriteString(conn, a)
			if strings.Contains(a, "close") {
				conn.Close()
				return
			}
		}
	})
	p, err := New(Config{URLs: []string{url}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		resp, o := doOnce(t, p, "GET")
		if o != OK {
			t.Fatalf("request %d: %v", i, o)
		}
		if bs := resp.BodyStream(); bs != nil && i%3 == 0 {
			io.ReadAll(bs)
		}
		_ = resp.CloseBodyStream()
	}
	hc := p.upstreams[0].hc
	if busy := hc.ConnsCount() - hc.IdleConnsCount(); busy != 0 {
		t.Errorf("%d connections still counted as in use", busy)
	}
}
