package upstream

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/deadline"
)

// maxConnectTimeout bounds opening one upstream connection (TCP and TLS
// handshake), below Timeout when that is longer, so a black-holed upstream
// does not hold a request that long before the next one is tried.
const maxConnectTimeout = 5 * time.Second

// dialer returns u's HostClient Dial: u.open, under a conn.
func dialer(cfg *Config, u *upstream) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		c, err := u.open(addr)
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*tls.Conn); ok {
			return tlsConn{newConn(tc, cfg.Timeout, cfg.MaxHeaderBytes, u)}, nil
		}
		return newConn(c, cfg.Timeout, cfg.MaxHeaderBytes, u), nil
	}
}

// opener returns how a connection to the upstream is opened: cfg.Dial
// (tests) or TCP, then TLS when tlsConfig is set. The TLS handshake is
// made here, not by fasthttp, so conn sits above TLS and reads the answers
// in clear; its Handshake method tells fasthttp the connection already
// speaks TLS. Tunnels use the connection bare.
func opener(cfg *Config, tlsConfig *tls.Config) func(addr string) (net.Conn, error) {
	connect := min(cfg.Timeout, maxConnectTimeout)
	dial := cfg.Dial
	if dial == nil {
		dial = func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, connect) }
	}
	return func(addr string) (net.Conn, error) {
		c, err := dial(addr)
		if err != nil || tlsConfig == nil {
			return c, err
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
		return tc, nil
	}
}

// tlsConn is a conn over TLS: fasthttp does not wrap a connection with a
// Handshake method in TLS again.
type tlsConn struct{ *conn }

// Handshake is a no-op: dialer has made it.
func (tlsConn) Handshake() error { return nil }

// conn is one upstream connection with the gateway's timeouts and a look
// at each answer's status line and header block:
//
//   - Timeout bounds, from the last write of a request, the wait for the
//     whole header block of its answer (interim 1xx answers included), and
//     then each pause while the body streams either way, like nginx's
//     proxy_read_timeout and proxy_send_timeout: never the length of an
//     answer that keeps coming (a download, server-sent events), which the
//     client side's write timeout bounds.
//   - An answer 101 Switching Protocols fails the read (errSwitchedConn),
//     after the first bytes of its status line (see Read): the request
//     asked for no Upgrade, so the upstream has turned the connection into
//     something else, and fasthttp, which takes a 101 as an ordinary
//     answer, would pool it and send the next client's request, identity
//     headers included, into it. A failed read closes the connection
//     instead.
//   - It is the passive health check of its upstream: closed before the
//     header block of the answer to its first request ended (the upstream
//     dropped it or answered garbage), it marks the upstream down (see
//     Close). A failure on a connection that had carried earlier requests
//     is a stale keep-alive connection's, not the upstream's ill health.
//
// A small answer is one write and one read, and the scan stops at the
// header block's end. Deadlines are coarse (setReadDeadline): a keep-alive
// connection renews them on the runtime's timers about once per
// timeout/16 rather than on every write and read, and an exchange reads
// the clock once, when its request is written.
type conn struct {
	net.Conn
	timeout  time.Duration
	slack    time.Duration // how late a deadline may fire (deadline.Slack)
	rd, wd   time.Time     // the read and write deadlines set on Conn
	bufSize  int           // the client's read buffer: a header block that fills it is too large
	up       *upstream     // whose health the connection reports
	requests int           // requests written on this connection

	phase          connPhase
	headerDeadline time.Time
	line           statusLine // the status line being read
	tail           [3]byte    // the last bytes read, for a terminator across reads
	tailLen        int
	failed         error // every later read fails with it
	reading        bool  // the answer is being read: the request went out whole
	answerBytes    int   // read since the request, until its header block ended
	timedOut       bool  // the last read timed out
}

// connPhase is where a conn is in the answer it reads.
type connPhase uint8

const (
	phaseBody    connPhase = iota // between answers, or in a body
	phaseStatus                   // reading a status line
	phaseInterim                  // in an interim 1xx answer's header block
	phaseHeaders                  // in the final answer's header block
)

func newConn(c net.Conn, timeout time.Duration, bufSize int, u *upstream) *conn {
	return &conn{Conn: c, timeout: timeout, slack: deadline.Slack(timeout), bufSize: bufSize, up: u}
}

// setReadDeadline makes Conn's read deadline due at d, at most c.slack
// late (deadline.Coarse: a busy keep-alive connection renews it about once
// per slack instead of on every read).
func (c *conn) setReadDeadline(d time.Time) error {
	return deadline.Renew(c.Conn, false, d, &c.rd, c.slack)
}

// SetDeadline, SetReadDeadline and SetWriteDeadline set Conn's deadlines
// exactly, and keep what setReadDeadline and setWriteDeadline know of them.
// Nothing calls them today (the HostClient sets no timeouts of its own and
// tunnels use the bare connection); they keep c.rd and c.wd true if
// anything does.
func (c *conn) SetDeadline(t time.Time) error {
	c.rd, c.wd = t, t
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline: see SetDeadline.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.rd = t
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline: see SetDeadline.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wd = t
	return c.Conn.SetWriteDeadline(t)
}

// setWriteDeadline is setReadDeadline for writes.
func (c *conn) setWriteDeadline(d time.Time) error {
	return deadline.Renew(c.Conn, true, d, &c.wd, c.slack)
}

// errSwitchedConn fails the read of an answer 101 Switching Protocols.
var errSwitchedConn = errors.New("proxy: the upstream answered 101 Switching Protocols to a request without Upgrade")

func (c *conn) Write(p []byte) (int, error) {
	now := time.Now()
	if c.phase == phaseBody {
		// The first write of a request.
		c.phase, c.line, c.tailLen = phaseStatus, statusLine{}, 0
		c.reading, c.answerBytes, c.timedOut = false, 0, false
		c.requests++
	}
	if c.phase == phaseStatus {
		// The answer's header block is due within the timeout from the
		// request's last byte: an upload may take longer than that.
		c.headerDeadline = now.Add(c.timeout)
	}
	if err := c.setWriteDeadline(now.Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *conn) Read(p []byte) (int, error) {
	deadline := c.headerDeadline
	if c.phase == phaseBody {
		deadline = time.Now().Add(c.timeout)
	}
	if err := c.setReadDeadline(deadline); err != nil {
		return 0, err
	}
	if c.failed != nil {
		return 0, c.failed
	}
	n, err := c.Conn.Read(p)
	if c.phase == phaseBody {
		return n, err
	}
	c.reading = true
	c.answerBytes += n
	c.timedOut = err != nil && isTimeout(err)
	if n > 0 {
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

// Close closes the connection. Closed while the answer to its first
// request was being read (fasthttp closes a connection whose exchange
// failed), it marks its upstream down, unless the read timed out (a slow
// upstream, 504), the answer was a 101 or its header block filled the
// client's buffer (answers a request could provoke), or no answer was
// awaited yet (the client's body failed while it was being sent).
func (c *conn) Close() error {
	if c.reading && c.phase != phaseBody && c.requests == 1 && c.answerBytes < c.bufSize &&
		!c.timedOut && c.failed == nil && c.up != nil {
		c.up.markDown()
	}
	return c.Conn.Close()
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
func (c *conn) scan(b []byte) (at int, err error) {
	off := 0 // bytes of b consumed
	for off < len(b) {
		switch c.phase {
		case phaseStatus:
			ch := b[off]
			off++
			if c.line.n == 0 && (ch == '\r' || ch == '\n') {
				continue // an empty line before the status line
			}
			code, done := c.line.next(ch)
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
			if ch == '\r' || ch == '\n' {
				// A line that ended before a code: its header block
				// starts here.
				c.tail[0], c.tailLen = ch, 1
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
			c.phase, c.line, c.tailLen = phaseStatus, statusLine{}, 0
		default:
			return 0, nil
		}
	}
	return 0, nil
}

// statusLine reads the code of a status line's start, a byte at a time:
// "HTTP/" digit "." digit, one or more spaces (any number, as fasthttp
// takes), three digits.
type statusLine struct {
	n      int // bytes seen
	spaces bool
	digits int
	code   int
}

// next takes the line's next byte. done is false while more bytes could
// complete the code; a start that cannot is done with code 0.
func (s *statusLine) next(ch byte) (code int, done bool) {
	const proto = "HTTP/0.0"
	s.n++
	switch {
	case s.n <= len(proto):
		want := proto[s.n-1]
		if want == '0' && (ch < '0' || ch > '9') || want != '0' && ch != want {
			return 0, true
		}
		return 0, false
	case s.digits == 0 && ch == ' ':
		s.spaces = true
		return 0, false
	case !s.spaces || ch < '0' || ch > '9':
		return 0, true
	}
	s.code = s.code*10 + int(ch-'0')
	s.digits++
	return s.code, s.digits == 3
}

// headerEnd returns the index in b just past the blank line that ends a
// header block ("\r\n\r\n", or "\n\n" as fasthttp also accepts), counting
// the bytes of earlier reads, or -1; it keeps b's last bytes for the next
// read.
func (c *conn) headerEnd(b []byte) int {
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
