// Package redistest gives tests the shared Redis of the machine
// (127.0.0.1:6379, or SCOPEGATE_TEST_REDIS_ADDR) with a key prefix of their
// own, a private redis-server on a free loopback port for tests that restart
// or flush it, and a TCP relay that can cut the way to either. Without a
// Redis the tests are skipped with a loud message, or fail when CI=true.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testproc"
)

// EnvAddr names the variable that points the tests at another shared Redis.
const EnvAddr = "SCOPEGATE_TEST_REDIS_ADDR"

// skip skips t loudly, or fails it when CI=true.
func skip(t testing.TB, msg string) {
	t.Helper()
	testproc.SkipOrFail(t, "no Redis: "+msg)
}

// Ping sends PING to addr and reports whether PONG came back.
func Ping(addr string) error {
	_, err := Command(addr, "PING")
	return err
}

// Command sends one command to addr over RESP and returns the reply's first
// line, or a bulk string whole (errors as an error). It is the tests'
// redis-cli: enough for PING, FLUSHALL, SCRIPT FLUSH, PTTL, GET and INFO.
func Command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == "":
		return "", fmt.Errorf("redis %s: empty reply", args[0])
	case line[0] == '-':
		return "", fmt.Errorf("redis %s: %s", args[0], line[1:])
	case line[0] == '$' && line != "$-1":
		var n int
		if _, err := fmt.Sscanf(line[1:], "%d", &n); err != nil {
			return "", err
		}
		v := make([]byte, n+2)
		if _, err := io.ReadFull(r, v); err != nil {
			return "", err
		}
		return string(v[:n]), nil
	}
	return line, nil
}

// Shared returns the address of the machine's Redis, skipping t (failing
// under CI=true) when it does not answer. Tests must keep to keys under a
// [Prefix] of their own and never flush it.
func Shared(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvAddr)
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	if err := Ping(addr); err != nil {
		skip(t, fmt.Sprintf("Redis at %s does not answer (%v); .ci/run starts redis-server", addr, err))
	}
	return addr
}

// Prefix returns a key prefix no other test (or run) uses.
func Prefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return "scopegate-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
}

// Binary returns the redis-server binary ($PATH, then Debian's and a
// source install's places), "" when none is installed.
func Binary() string {
	return testproc.Find([]string{"redis-server"}, "/usr/bin/redis-server", "/usr/local/bin/redis-server")
}

// Server is a private redis-server on a free loopback port: tests may
// restart it, flush it or shut it down.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	Addr string
	proc *testproc.Proc
}

// Start starts a private redis-server (no persistence) and stops it when
// the test ends. Without redis-server installed t is skipped (failed when
// CI=true).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		skip(t, "redis-server is not installed")
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir()}
	s.start(0)
	t.Cleanup(s.Stop)
	return s
}

// start runs redis-server on port (0: a free one), retrying a port another
// process took between choosing and binding. Its log is redis.log in the
// server's directory.
func (s *Server) start(port int) {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		p := port
		if p == 0 {
			p = testproc.FreePort(s.t)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		cmd := exec.Command(s.bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(p), "--save", "", "--appendonly", "no", "--dir", s.dir)
		proc, err := testproc.Start("redis-server", cmd, filepath.Join(s.dir, "redis.log"))
		if err != nil {
			s.t.Fatal(err)
		}
		err = testproc.Wait(context.Background(), proc, 10*time.Second, 10*time.Millisecond, func() error { return Ping(addr) })
		if err == nil {
			s.Addr, s.proc = addr, proc
			return
		}
		proc.Stop(nil, 0)
		if port != 0 || attempt >= 3 {
			s.t.Fatalf("redis-server on %s did not answer (%v):\n%s", addr, err, proc.Output(0))
		}
	}
}

// Stop stops the server (by its PID) and waits for it to exit.
func (s *Server) Stop() {
	s.proc.Stop(syscall.SIGTERM, 5*time.Second)
	s.proc = nil
}

// Restart stops the server and starts a new one on the same port: every key
// and every loaded script is gone.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var port int
	_, _ = fmt.Sscanf(s.Addr[strings.LastIndexByte(s.Addr, ':')+1:], "%d", &port)
	s.start(port)
}

// RelayMode is what a [Relay] does with traffic.
type RelayMode int32

// Relay modes.
const (
	Pass RelayMode = iota // forward both ways
	Drop                  // close every connection at once (Redis refuses)
	Hang                  // accept and never answer (Redis times out)
)

// Relay is a TCP relay on a free loopback port to a target: cutting it
// simulates a Redis that refuses or hangs, restoring it lets traffic through
// again.
type Relay struct {
	Addr   string
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  RelayMode
	conns map[net.Conn]struct{}
}

// NewRelay starts a relay to target, closed when the test ends.
func NewRelay(t testing.TB, target string) *Relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		r.closeAll()
	})
	return r
}

// Set switches the mode; Drop and Hang close the connections open so far.
func (r *Relay) Set(m RelayMode) {
	r.mu.Lock()
	r.mode = m
	r.mu.Unlock()
	if m != Pass {
		r.closeAll()
	}
}

func (r *Relay) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
		delete(r.conns, c)
	}
}

func (r *Relay) track(c net.Conn) {
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
}

func (r *Relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		mode := r.mode
		r.mu.Unlock()
		switch mode {
		case Drop:
			c.Close()
			continue
		case Hang:
			r.track(c) // held open, never read: closed by the next Set or cleanup
			continue
		}
		up, err := net.DialTimeout("tcp", r.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		r.track(c)
		r.track(up)
		go func() { _, _ = io.Copy(up, c); up.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up); up.Close(); c.Close() }()
	}
}
