package testproc

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

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

// FirstAnswered serves keep-alive HTTP/1.1 connections on loopback (see
// [ServeConns]): the first request of all gets first's answer, written on
// its connection (br reads what follows on it; first reports false to end
// the connection afterwards); every later request gets rest, a raw answer.
// It returns the address and the count of connections accepted.
func FirstAnswered(t TB, first func(c net.Conn, br *bufio.Reader) (keep bool), rest string) (string, *atomic.Int32) {
	t.Helper()
	var conns, requests atomic.Int32
	addr := ServeConns(t, func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if requests.Add(1) > 1 {
				io.WriteString(c, rest)
				continue
			}
			if !first(c, br) {
				return
			}
		}
	})
	return addr, &conns
}
