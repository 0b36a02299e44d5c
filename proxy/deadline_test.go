package proxy

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/testproc"
)

// coarsePair returns a coarseConn with slack and the peer end of its
// loopback connection.
func coarsePair(t *testing.T, slack time.Duration) (*coarseConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cl := &coarseListener{Listener: ln, slack: slack}
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := cl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*coarseConn), peer
}

// TestCoarseConn: deadlines are kept when one already set fires at most
// the slack later, a read deadline waits for the next Read unless one is
// blocked, interrupts take effect at once, and a timeout never fires
// before the instant asked for.
func TestCoarseConn(t *testing.T) {
	t.Run("renewals within the slack are skipped", func(t *testing.T) {
		c, _ := coarsePair(t, time.Second)
		base := time.Now().Add(time.Minute)
		if err := c.SetWriteDeadline(base); err != nil {
			t.Fatal(err)
		}
		set := c.wdSet
		if !set.Equal(base.Add(time.Second)) {
			t.Fatalf("write deadline set to %v, want %v", set, base.Add(time.Second))
		}
		_ = c.SetWriteDeadline(base.Add(500 * time.Millisecond))
		if !c.wdSet.Equal(set) {
			t.Errorf("a renewal within the slack changed the deadline")
		}
		_ = c.SetWriteDeadline(base.Add(2 * time.Second))
		if !c.wdSet.Equal(base.Add(3 * time.Second)) {
			t.Errorf("a renewal past the slack: %v, want %v", c.wdSet, base.Add(3*time.Second))
		}
		_ = c.SetWriteDeadline(base.Add(-30 * time.Second))
		if !c.wdSet.Equal(base.Add(-29 * time.Second)) {
			t.Errorf("an earlier deadline was not set: %v", c.wdSet)
		}
		_ = c.SetWriteDeadline(time.Time{})
		if !c.wdSet.IsZero() {
			t.Errorf("the zero deadline was not set")
		}
	})
	t.Run("a read deadline waits for the next Read", func(t *testing.T) {
		c, peer := coarsePair(t, time.Second)
		want := time.Now().Add(time.Minute)
		_ = c.SetReadDeadline(want)
		if !c.rdSet.IsZero() {
			t.Fatalf("read deadline set before any Read")
		}
		if _, err := peer.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if !c.rdSet.Equal(want.Add(time.Second)) {
			t.Errorf("after a Read the read deadline is %v, want %v", c.rdSet, want.Add(time.Second))
		}
	})
	t.Run("an interrupt reaches a blocked Read", func(t *testing.T) {
		// A slack of an hour: an interrupt treated as a coarse deadline
		// would keep the Read blocked past the 10 s below. (A deadline
		// already set within the slack of the interrupt is kept: it fires
		// within the slack anyway.)
		c, _ := coarsePair(t, time.Hour)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Hour))
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		testproc.WaitFor(t, 10*time.Second, "the Read to block with its deadline applied", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.reading && !c.rdSet.IsZero()
		})
		_ = c.SetReadDeadline(time.Now())
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("interrupted Read: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a past read deadline did not end the blocked Read")
		}
	})
	t.Run("a timeout never fires early", func(t *testing.T) {
		c, _ := coarsePair(t, 50*time.Millisecond)
		want := time.Now().Add(300 * time.Millisecond)
		_ = c.SetReadDeadline(want)
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v", err)
		}
		if now := time.Now(); now.Before(want) {
			t.Errorf("the read deadline fired %v early", want.Sub(now))
		}
	})
	t.Run("SetDeadline is exact", func(t *testing.T) {
		c, _ := coarsePair(t, time.Second)
		d := time.Now().Add(time.Minute)
		_ = c.SetDeadline(d)
		if !c.rdSet.Equal(d) || !c.wdSet.Equal(d) {
			t.Errorf("SetDeadline: read %v write %v, want %v", c.rdSet, c.wdSet, d)
		}
	})
}

// noIO is a connection whose reads and writes do nothing: its deadlines
// are a real socket's, so the benchmark below measures them alone.
type noIO struct{ net.Conn }

func (noIO) Read(b []byte) (int, error)  { return len(b), nil }
func (noIO) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkCoarseConn: one keep-alive exchange's deadline calls as fasthttp
// makes them (the idle wait, the read timeout after the first byte, the
// write timeout) and a read and a write, on a loopback socket's deadlines:
// bare, and through coarseConn.
func BenchmarkCoarseConn(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	raw, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	buf := make([]byte, 512)
	for _, c := range []struct {
		name string
		conn net.Conn
	}{
		{"bare", noIO{raw}},
		{"coarse", &coarseConn{Conn: noIO{raw}, slack: 30 * time.Second / 16}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.conn.SetReadDeadline(time.Now().Add(90 * time.Second))
				_, _ = c.conn.Read(buf)
				_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				_ = c.conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
				_, _ = c.conn.Write(buf)
			}
		})
	}
}

// TestPeerAddrAtAccept: a connection from the traffic listener carries its
// peer, parsed once, and peerAddr reads it; another connection's peer is
// parsed from RemoteAddr. Both unmap IPv4-mapped addresses.
func TestPeerAddrAtAccept(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 4000}
	want := netip.MustParseAddr("10.1.2.3")
	c := fakeConn{remote: remote}
	ln := &coarseListener{Listener: &oneConnListener{c: c}, slack: time.Second}
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	// The accepted connection's RemoteAddr now names another peer: only
	// the address parsed at accept gives want.
	accepted.(*coarseConn).Conn = fakeConn{remote: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}}
	for name, conn := range map[string]net.Conn{"accepted": accepted, "plain": c} {
		var ctx fasthttp.RequestCtx
		ctx.Init2(conn, nil, false)
		if got := peerAddr(&ctx); got != want {
			t.Errorf("%s: peerAddr = %v, want %v", name, got, want)
		}
	}
}

// BenchmarkPeerAddr: the peer of a request on an accepted connection
// (parsed at accept) against one parsed from RemoteAddr per request.
func BenchmarkPeerAddr(b *testing.B) {
	c := fakeConn{remote: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 4000}}
	ln := &coarseListener{Listener: &oneConnListener{c: c}, slack: time.Second}
	accepted, _ := ln.Accept()
	for name, conn := range map[string]net.Conn{"accepted": accepted, "plain": c} {
		b.Run(name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			ctx.Init2(conn, nil, false)
			b.ReportAllocs()
			for b.Loop() {
				if !peerAddr(&ctx).IsValid() {
					b.Fatal("no peer")
				}
			}
		})
	}
}

// fakeConn is a net.Conn with a remote address and nothing else.
type fakeConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }

// oneConnListener accepts c once.
type oneConnListener struct {
	net.Listener
	c net.Conn
}

func (l *oneConnListener) Accept() (net.Conn, error) { return l.c, nil }
