package testproc

import "net"

// ServeConns hands each connection to a new loopback listener to handle
// (closing it afterwards) until the test ends, and returns the listener's
// address: an upstream or peer that behaves (or misbehaves) at the byte
// level.
func ServeConns(t TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}
