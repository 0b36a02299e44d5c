package testproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func shell(t *testing.T) string {
	t.Helper()
	sh := Find([]string{"sh"}, "/bin/sh")
	if sh == "" {
		SkipOrFail(t, "no sh on PATH or at /bin/sh")
	}
	return sh
}

// TestWait: a process that never gets ready and exits ends the wait at
// once with ErrExited and its output kept; one that listens is ready.
func TestWait(t *testing.T) {
	sh := shell(t)
	dir := t.TempDir()
	p, err := Start("quitter", exec.Command(sh, "-c", "echo bye; exit 3"), filepath.Join(dir, "quitter.log"))
	if err != nil {
		t.Fatal(err)
	}
	err = Wait(context.Background(), p, time.Minute, 10*time.Millisecond, func() error { return errors.New("not yet") })
	if !errors.Is(err, ErrExited) {
		t.Errorf("Wait on a process that exited: %v, want ErrExited", err)
	}
	if got := p.Output(0); got != "bye\n" {
		t.Errorf("Output %q", got)
	}
	if got := p.Output(2); got != "e\n" {
		t.Errorf("Output(2) %q", got)
	}

	addr := ServeConns(t, func(c net.Conn) { _, _ = c.Write([]byte("hi\n")) })
	if err := Wait(context.Background(), nil, time.Minute, 10*time.Millisecond, Dials(addr)); err != nil {
		t.Errorf("Wait for %s: %v", addr, err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hi\n" {
		t.Errorf("ServeConns handler wrote %q, %v", line, err)
	}
}

// TestStop: Stop ends a process that ignores nothing by its signal, and one
// that ignores the signal by SIGKILL after the grace period.
func TestStop(t *testing.T) {
	sh := shell(t)
	for _, c := range []struct {
		name   string
		script string
		signal syscall.Signal // what ended it
	}{
		{"obeys SIGTERM", "echo up; exec sleep 60", syscall.SIGTERM},
		{"ignores SIGTERM", "trap '' TERM; echo up; while :; do sleep 1; done", syscall.SIGKILL},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Start(c.name, exec.Command(sh, "-c", c.script), filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			WaitReady(t, p, time.Minute, 10*time.Millisecond, func() error {
				if !strings.Contains(p.Output(0), "up") {
					return errors.New("not up")
				}
				return nil
			})
			p.Stop(syscall.SIGTERM, 200*time.Millisecond)
			if !p.Exited() {
				t.Fatal("Stop returned before the process exited")
			}
			ws := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != c.signal {
				t.Errorf("ended by %v, want %v", p.Cmd.ProcessState, c.signal)
			}
		})
	}
}

// fakeTB records what a helper reports instead of ending the test.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
}

// TestWaitFor: a condition that comes true ends the wait; one that never
// does fails the test, naming what it waited for.
func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, time.Minute, "the third call", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
	f := &fakeTB{TB: t}
	WaitFor(f, 30*time.Millisecond, "never", func() bool { return false })
	if !strings.Contains(f.fatal, "timed out waiting for never") {
		t.Errorf("failure %q", f.fatal)
	}
}

func TestMeasures(t *testing.T) {
	if kib, err := PeakRSS(os.Getpid()); err != nil || kib <= 0 {
		t.Errorf("PeakRSS(self) = %d KiB, %v", kib, err)
	}
	if _, err := PeakRSS(-1); err == nil {
		t.Error("PeakRSS(-1): no error")
	}
	if LiveHeap() == 0 {
		t.Error("LiveHeap() = 0")
	}
	start := ProcessCPU()
	for ProcessCPU() == start { // spin until the clock of CPU time moves
	}
}
