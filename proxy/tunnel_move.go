package proxy

import (
	"net"
	"sync"
)

// mover carries one direction of a tunnel: fill takes what src has (at
// most one read's worth, waiting under src's read deadline), drain hands
// those n bytes to dst (under dst's write deadline). The pump around it
// owns the deadlines, the idle clock and the close reasons, so a mover
// only moves bytes.
type mover interface {
	fill(src net.Conn) (int, error)
	drain(dst net.Conn, n int) error
	release()
}

var tunnelBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copier moves bytes through a 64 KiB buffer in user space: it works on
// any net.Conn (TLS, the hijacked connection with fasthttp's read buffer
// in front of it).
type copier struct{ bp *[]byte }

func newCopier() *copier { return &copier{bp: tunnelBufs.Get().(*[]byte)} }

func (c *copier) fill(src net.Conn) (int, error) { return src.Read(*c.bp) }

func (c *copier) drain(dst net.Conn, n int) error {
	_, err := dst.Write((*c.bp)[:n])
	return err
}

func (c *copier) release() { tunnelBufs.Put(c.bp) }

// bareTCP is the TCP connection under c: c itself, or the connection a
// fasthttp hijack wraps (its UnsafeConn), under the traffic listener's
// coarse-deadline wrapper (its UnsafeConn too). It is nil for anything
// else (TLS above all), which only a copier can carry.
func bareTCP(c net.Conn) *net.TCPConn {
	for range 3 {
		u, ok := c.(interface{ UnsafeConn() net.Conn })
		if !ok {
			break
		}
		c = u.UnsafeConn()
	}
	tc, _ := c.(*net.TCPConn)
	return tc
}
