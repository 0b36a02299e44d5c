// Package testproc is the process plumbing the tests (and the bench
// harness) share: a free loopback port, a binary looked up on PATH and at
// fixed places, a child process whose output goes to a file and which is
// stopped by its PID (or, for a program with helpers of its own, by its
// process group: group.go), a wait until it is ready, the skip-or-fail rule for a
// missing tool, and a loopback listener that hands each connection to a
// function.
//
// It does not import testing: the functions that end a test take a [TB],
// which testing.TB satisfies, so the bench binary can use the rest.
package testproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Failed() bool
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skip(args ...any)
}

// SkipOrFail ends t because something it needs (msg says what) is missing:
// it skips loudly, or fails when CI=true, so CI never passes a test that
// did not run.
func SkipOrFail(t TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (fatal because CI=true)")
	}
	t.Skip("SKIPPING: " + msg)
}

// Find returns the first of names found on PATH, else the first of paths
// that exists, else "".
func Find(names []string, paths ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Chromium returns the headless Chromium the browser tests drive; without
// one t is skipped loudly (failed when CI=true; .ci/run installs it).
func Chromium(t TB) string {
	t.Helper()
	p := Find([]string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"})
	if p == "" {
		SkipOrFail(t, "chromium not found on PATH (apt-get install -y chromium); the browser tests did not run")
	}
	return p
}

// Port returns a loopback TCP port that was free a moment ago.
func Port() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// FreePort is Port for a test: it fails t when no port can be had.
func FreePort(t TB) int {
	t.Helper()
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreeAddr returns "127.0.0.1:port" for a FreePort.
func FreeAddr(t TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// Proc is a child process started by [Start]: its output goes to the file
// Log, and Stop ends it by its PID.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{} // closed once the process has exited and been reaped
}

// Start starts cmd with its standard output and error to a new file at
// logPath, and reaps it when it exits. name is what messages call it.
func Start(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// Run is Start for a test: it fails t when cmd does not start and, when the
// test ends, stops the process with sig (see [Proc.Stop]) and logs its
// output if the test failed.
func Run(t TB, name string, cmd *exec.Cmd, logPath string, sig os.Signal, grace time.Duration) *Proc {
	t.Helper()
	p, err := Start(name, cmd, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(sig, grace)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Output(0))
		}
	})
	return p
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig to the process (by its PID; nil means SIGKILL at once),
// sends SIGKILL if it has not exited after grace, and waits until it has.
// A nil p, or one already stopped, is left alone.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) {
	if p == nil || p.Cmd.Process == nil || p.Exited() {
		return
	}
	if sig == nil {
		_ = p.Cmd.Process.Kill()
		<-p.done
		return
	}
	_ = p.Cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Output returns what the process wrote, its last max bytes when max > 0.
func (p *Proc) Output(max int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if max > 0 && len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// ErrExited is what Wait returns when the process ended before it was ready.
var ErrExited = errors.New("exited")

// Wait calls ready every interval until it returns nil. It gives up when
// timeout passes (returning ready's last error), when ctx ends, or when p
// (which may be nil) exits (returning an error that wraps ErrExited).
func Wait(ctx context.Context, p *Proc, timeout, interval time.Duration, ready func() error) error {
	var exited <-chan struct{}
	if p != nil {
		exited = p.done
	}
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			if ready() == nil {
				return nil
			}
			return fmt.Errorf("%s %w: %v", p.Name, ErrExited, err)
		case <-time.After(interval):
		}
	}
}

// Dials returns a ready function for Wait: addr accepts a TCP connection.
func Dials(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// WaitReady is Wait for a test: it fails t, showing the process's output,
// when p is not ready in time.
func WaitReady(t TB, p *Proc, timeout, interval time.Duration, ready func() error) {
	t.Helper()
	if err := Wait(context.Background(), p, timeout, interval, ready); err != nil {
		t.Fatalf("%s was not ready within %s: %v\n%s output:\n%s", p.Name, timeout, err, p.Name, p.Output(4000))
	}
}

// WaitFor polls cond every 10 ms until it holds, failing t ("timed out
// waiting for <what>") when within passes first.
func WaitFor(t TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	notYet := errors.New("not yet")
	err := Wait(context.Background(), nil, within, 10*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return notYet
	})
	if err != nil {
		t.Fatalf("timed out waiting for %s (%v)", what, within)
	}
}
