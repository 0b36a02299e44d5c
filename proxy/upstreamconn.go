package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// maxConnectTimeout bounds opening one upstream connection (TCP and TLS
// handshake), below SCOPEGATE_UPSTREAM_TIMEOUT when that is longer, so a
// black-holed upstream does not hold a request that long before the next
// one is tried.
const maxConnectTimeout = 5 * time.Second

// upstreamDialer returns the HostClient's Dial: cfg.UpstreamDial (tests) or
// TCP, then TLS when tlsConfig is set, under an upstreamConn. The TLS
// handshake is made here, not by fasthttp, so upstreamConn sits above TLS
// and reads the answers in clear; its Handshake method tells fasthttp the
// connection already speaks TLS.
func upstreamDialer(cfg *Config, tlsConfig *tls.Config) fasthttp.DialFunc {
	timeout := cfg.UpstreamTimeout
	connect := min(timeout, maxConnectTimeout)
	dial := cfg.UpstreamDial
	if dial == nil {
		dial = func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, connect) }
	}
	return func(addr string) (net.Conn, error) {
		c, err := dial(addr)
		if err != nil {
			return nil, err
		}
		if tlsConfig == nil {
			return newUpstreamConn(c, timeout), nil
		}
		tc := tls.Client(c, tlsConfig)
		if err := tc.SetDeadline(time.Now().Add(connect)); err != nil {
			c.Close()
			return nil, err
		}
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		return tlsUpstreamConn{newUpstreamConn(tc, timeout)}, nil
	}
}

// tlsUpstreamConn is an upstreamConn over TLS: fasthttp does not wrap a
// connection with a Handshake method in TLS again.
type tlsUpstreamConn struct{ *upstreamConn }

// Handshake is a no-op: upstreamDialer has made it.
func (tlsUpstreamConn) Handshake() error { return nil }

// upstreamConn is one upstream connection with the gateway's timeouts and a
// look at each answer's status line and header block:
//
//   - SCOPEGATE_UPSTREAM_TIMEOUT bounds, from the last write of a request,
//     the wait for the whole header block of its answer (interim 1xx
//     answers included), and then each pause while the body streams either
//     way, like nginx's proxy_read_timeout and proxy_send_timeout: never the
//     length of an answer that keeps coming (a download, server-sent
//     events), which the client side's SCOPEGATE_WRITE_TIMEOUT bounds.
//   - An answer 101 Switching Protocols fails the read (errSwitchedConn),
//     after the first bytes of its status line (see Read):
//     the gateway never forwards an Upgrade, so the upstream has turned the
//     connection into something else, and fasthttp, which takes a 101 as an
//     ordinary answer, would pool it and send the next client's request,
//     identity headers included, into it. A failed read closes the
//     connection instead.
//   - It counts the requests it carried, so a failure can be told to be a
//     stale keep-alive connection's (not the upstream's ill health).
//
// It costs what one deadline per request did: a small answer is one write
// and one read, and the scan stops at the header block's end.
type upstreamConn struct {
	net.Conn
	timeout  time.Duration
	addr     connAddr
	requests atomic.Int32 // requests written on this connection

	phase          connPhase
	headerDeadline time.Time
	status         [32]byte // the start of the status line being read
	statusLen      int
	tail           [3]byte // the last bytes read, for a terminator across reads
	tailLen        int
	failed         error       // every later read fails with it
	retired        atomic.Bool // forward saw a 101 scan missed: never write again
}

// connPhase is where an upstreamConn is in the answer it reads.
type connPhase uint8

const (
	phaseBody    connPhase = iota // between answers, or in a body
	phaseStatus                   // reading a status line
	phaseInterim                  // in an interim 1xx answer's header block
	phaseHeaders                  // in the final answer's header block
)

// connAddr is an upstreamConn's local address, as fasthttp records it on
// the response (Response.LocalAddr), with a way back to the connection.
type connAddr struct {
	net.Addr
	conn *upstreamConn
}

func newUpstreamConn(c net.Conn, timeout time.Duration) *upstreamConn {
	u := &upstreamConn{Conn: c, timeout: timeout}
	u.addr = connAddr{Addr: c.LocalAddr(), conn: u}
	return u
}

var (
	// errSwitchedConn fails the read of an answer 101 Switching Protocols.
	errSwitchedConn = errors.New("proxy: the upstream answered 101 Switching Protocols to a request without Upgrade")
	// errRetiredConn refuses a request, unsent, on a connection retired
	// after a 101 scan missed (retireConn); it is retried like a stale one.
	errRetiredConn = errors.New("proxy: the connection was retired after a 101 Switching Protocols")
)

// LocalAddr returns the local address with a link to c (see reusedConn).
func (c *upstreamConn) LocalAddr() net.Addr { return &c.addr }

func (c *upstreamConn) Write(p []byte) (int, error) {
	if c.retired.Load() {
		return 0, errRetiredConn
	}
	now := time.Now()
	if c.phase == phaseBody {
		// The first write of a request.
		c.phase, c.statusLen, c.tailLen = phaseStatus, 0, 0
		c.requests.Add(1)
	}
	if c.phase == phaseStatus {
		// The answer's header block is due within the timeout from the
		// request's last byte: an upload may take longer than that.
		c.headerDeadline = now.Add(c.timeout)
	}
	if err := c.Conn.SetWriteDeadline(now.Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *upstreamConn) Read(p []byte) (int, error) {
	deadline := c.headerDeadline
	if c.phase == phaseBody {
		deadline = time.Now().Add(c.timeout)
	}
	if err := c.Conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	if c.failed != nil {
		return 0, c.failed
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.phase != phaseBody {
		if at, serr := c.scan(p[:n]); serr != nil {
			c.failed = serr
			if at < 0 {
				return 0, serr // fasthttp holds the start of the 101's line
			}
			// fasthttp takes an error on an answer's first byte for a
			// closed connection (and retries an idempotent request): hand
			// it the 101's line up to the code's first digit, never a
			// whole line, so the error comes on its next read.
			return at + 1, nil
		}
	}
	return n, err
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	lflf     = []byte("\n\n")
)

// scan follows b through status lines and header blocks until the final
// answer's header block ends. On a 101 it returns errSwitchedConn and the
// index in b of the status code's first digit, or -1 when that came in an
// earlier read. The status line is read as fasthttp's parser reads it:
// empty lines before it are skipped, and any number of spaces may precede
// the code.
func (c *upstreamConn) scan(b []byte) (at int, err error) {
	off := 0 // bytes of b consumed
	for off < len(b) {
		switch c.phase {
		case phaseStatus:
			ch := b[off]
			off++
			if c.statusLen == 0 && (ch == '\r' || ch == '\n') {
				continue // an empty line before the status line
			}
			if c.statusLen < len(c.status) {
				c.status[c.statusLen] = ch
			}
			c.statusLen++
			code, done := statusCode(c.status[:min(c.statusLen, len(c.status))], ch == '\n' || c.statusLen > len(c.status))
			if !done {
				continue
			}
			c.phase = phaseHeaders
			switch {
			case code == 101:
				return max(off-3, -1), errSwitchedConn
			case code >= 100 && code < 200:
				c.phase = phaseInterim // 100, 102, 103: the final answer follows
			}
			if ch == '\n' {
				// A line that ended before a code: its header block
				// starts here.
				c.tail[0], c.tailLen = '\n', 1
			}
		case phaseInterim, phaseHeaders:
			i := c.headerEnd(b[off:])
			if i < 0 {
				return 0, nil
			}
			off += i
			if c.phase == phaseHeaders {
				c.phase = phaseBody
				return 0, nil
			}
			c.phase, c.statusLen, c.tailLen = phaseStatus, 0, 0
		default:
			return 0, nil
		}
	}
	return 0, nil
}

// statusCode reads the code of a status line's start: "HTTP/" digit "."
// digit, one or more spaces, three digits. done is false while more bytes
// could complete it; a start that cannot (or one cut by end) is done with
// code 0.
func statusCode(line []byte, end bool) (code int, done bool) {
	const proto = "HTTP/0.0"
	for i := 0; i < len(proto); i++ {
		if i == len(line) {
			return 0, end
		}
		c := line[i]
		if proto[i] == '0' && (c < '0' || c > '9') || proto[i] != '0' && c != proto[i] {
			return 0, true
		}
	}
	i := len(proto)
	if i < len(line) && line[i] != ' ' {
		return 0, true
	}
	for i < len(line) && line[i] == ' ' {
		i++
	}
	if i == len(proto) || len(line)-i < 3 {
		return 0, end
	}
	for _, c := range line[i : i+3] {
		if c < '0' || c > '9' {
			return 0, true
		}
		code = code*10 + int(c-'0')
	}
	return code, true
}

// headerEnd returns the index in b just past the blank line that ends a
// header block ("\r\n\r\n", or "\n\n" as fasthttp also accepts), counting
// the bytes of earlier reads, or -1; it keeps b's last bytes for the next
// read.
func (c *upstreamConn) headerEnd(b []byte) int {
	if c.tailLen > 0 {
		var w [6]byte
		m := copy(w[:], c.tail[:c.tailLen])
		m += copy(w[m:], b)
		if i := terminatorEnd(w[:m]); i > c.tailLen {
			return i - c.tailLen
		}
	}
	if i := terminatorEnd(b); i >= 0 {
		return i
	}
	if len(b) >= len(c.tail) {
		c.tailLen = copy(c.tail[:], b[len(b)-len(c.tail):])
	} else {
		keep := min(c.tailLen, len(c.tail)-len(b))
		copy(c.tail[:], c.tail[c.tailLen-keep:c.tailLen])
		c.tailLen = keep + copy(c.tail[keep:], b)
	}
	return -1
}

// terminatorEnd returns the index just past the first blank line in b, or
// -1.
func terminatorEnd(b []byte) int {
	end := -1
	if i := bytes.Index(b, crlfcrlf); i >= 0 {
		end = i + len(crlfcrlf)
	}
	if i := bytes.Index(b, lflf); i >= 0 && (end < 0 || i+len(lflf) < end) {
		end = i + len(lflf)
	}
	return end
}

// retireConn marks the connection resp was read from as never to carry
// another request, and closes it: forward's fallback for a 101 that scan
// did not recognise, after fasthttp has pooled the connection.
func retireConn(resp *fasthttp.Response) {
	if a, ok := resp.LocalAddr().(*connAddr); ok {
		a.conn.retired.Store(true)
		_ = a.conn.Conn.Close()
	}
}

// reusedConn reports whether the connection resp was read from (or its
// request failed on) had carried an earlier request: a failure there is
// the stale keep-alive connection's, not the upstream's ill health.
func reusedConn(resp *fasthttp.Response) bool {
	a, ok := resp.LocalAddr().(*connAddr)
	return ok && a.conn.requests.Load() > 1
}
