package proxy

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/scopegate/scopegate/internal/deadline"
)

// Listener returns ln with coarse deadlines on its connections, for the
// traffic listener's server ([Proxy.NewServer]; serve TLS on top of it, so
// the wrapper sits under TLS). fasthttp renews a connection's deadlines
// three times a request (the idle wait, the request's read, the answer's
// write), each a clock read and a change to the runtime's timer heap; on
// the virtual machines measured a renewal cost 0.3–0.5 µs, a tenth of
// what the proxy adds to a request (issue 16). Here:
//
//   - a read or write deadline already set within the slack after the
//     instant asked for is kept; one that must change is set that slack
//     later, so a busy keep-alive connection renews it about once per
//     slack. The slack is a sixteenth of the shortest of ReadTimeout,
//     WriteTimeout and IdleTimeout: a timeout never fires early and at
//     most that late (30 s: 1.9 s);
//   - a read deadline asked for while no Read is blocked takes effect at
//     the next Read (fasthttp sets the request's read deadline after its
//     first byte, and the whole request is usually in the buffer by then,
//     so the next Read is the idle wait that replaces it). One asked for
//     while a Read is blocked takes effect at once, as net.Conn specifies;
//   - a deadline less than two slacks away when it is set (an interrupt:
//     now or in the past) is set exactly and at once, unless the deadline
//     already set falls within the slack after it (it fires that soon
//     anyway); SetDeadline (both) is always set exactly and at once.
//
// The rule is internal/deadline's, which upstream connections share.
func (p *Proxy) Listener(ln net.Listener) net.Listener {
	slack := deadline.Slack(min(p.cfg.ReadTimeout, p.cfg.WriteTimeout, p.cfg.IdleTimeout))
	return &coarseListener{Listener: ln, slack: slack}
}

// coarseListener wraps accepted connections in coarseConn.
type coarseListener struct {
	net.Listener
	slack time.Duration
}

func (l *coarseListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &coarseConn{Conn: c, slack: l.slack, peer: addrOf(c.RemoteAddr())}, nil
}

// coarseConn is a connection with coarse deadlines (see [Proxy.Listener]).
type coarseConn struct {
	net.Conn
	slack time.Duration
	peer  netip.Addr // the peer's IP address, parsed at accept (peerAddr)

	mu      sync.Mutex
	reading bool      // a Read is in progress (one reader at a time, as fasthttp and tunnels read)
	rdWant  time.Time // the read deadline asked for
	rdSet   time.Time // the read deadline set on Conn
	wdSet   time.Time // the write deadline set on Conn
}

// applyRead sets the read deadline asked for; c.mu is held.
func (c *coarseConn) applyRead() error {
	return deadline.Renew(c.Conn, false, c.rdWant, &c.rdSet, c.slack)
}

func (c *coarseConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	c.reading = true
	err := c.applyRead()
	c.mu.Unlock()
	n := 0
	if err == nil {
		n, err = c.Conn.Read(b)
	}
	c.mu.Lock()
	c.reading = false
	c.mu.Unlock()
	return n, err
}

// SetReadDeadline takes effect at the next Read, or at once while a Read
// is blocked.
func (c *coarseConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdWant = t
	if c.reading {
		return c.applyRead()
	}
	return nil
}

// SetWriteDeadline takes effect at once (coarsely).
func (c *coarseConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return deadline.Renew(c.Conn, true, t, &c.wdSet, c.slack)
}

// SetDeadline sets both deadlines exactly and at once.
func (c *coarseConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdWant, c.rdSet, c.wdSet = t, t, t
	return c.Conn.SetDeadline(t)
}
