package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/testproc"
)

// mainArgsEnv, when set, makes the test binary run scopegate's main with
// these (space-separated) arguments instead of the tests, so a test can
// watch a whole process: its exit, not only serve's return.
const mainArgsEnv = "SCOPEGATE_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(mainArgsEnv); ok {
		os.Unsetenv(mainArgsEnv)
		os.Exit(run(strings.Fields(args), os.Stdout, os.Stderr))
	}
	pgtest.Main(m)
}

// TestSIGTERMExitIsPromptPostgres runs `scopegate serve` on PostgreSQL as a
// process, idle after a few requests, sends SIGTERM and measures the time
// from the "stopped" line to the process's exit: the pool, the change-feed
// listener and the last_used_at flush are all done before "stopped", so
// the exit follows at once (the issue saw 1.5–1.9 s; the bound is
// generous for a loaded machine). The shutdown line's timeout is a
// duration string.
func TestSIGTERMExitIsPromptPostgres(t *testing.T) {
	dsn := parityDB(t)
	port, admin := testproc.FreePort(t), testproc.FreePort(t)
	cmd := exec.Command(os.Args[0])
	// A binary built with -race sleeps atexit_sleep_ms (default 1 s) at
	// exit so late races get reported: that is the race runtime, not
	// scopegate, and is turned off here.
	cmd.Env = append(os.Environ(), mainArgsEnv+"=serve", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
		"SCOPEGATE_DATABASE_URL="+dsn,
		fmt.Sprintf("SCOPEGATE_LISTEN_ADDR=127.0.0.1:%d", port),
		fmt.Sprintf("SCOPEGATE_ADMIN_ADDR=127.0.0.1:%d", admin),
		"SCOPEGATE_SHUTDOWN_TIMEOUT=5s", "SCOPEGATE_LOG_ALLOWED=true")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan map[string]any, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				m["_at"] = time.Now()
				lines <- m
			}
		}
	}()
	waitMsg := func(msg string) map[string]any {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case m, ok := <-lines:
				if !ok {
					t.Fatalf("scopegate exited before logging %q", msg)
				}
				if m["msg"] == msg {
					return m
				}
			case <-timeout:
				t.Fatalf("no %q line", msg)
			}
		}
	}
	waitMsg("serving")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	tok := storetest.Basic().Token("app")
	for i := 0; i < 3; i++ {
		if status, body := httpGet(t, base+"/api/things", "X-API-Key", tok); status != 200 {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	shutdown := waitMsg("shutting down")
	stopped := waitMsg("stopped")["_at"].(time.Time)
	werr := cmd.Wait()
	gap := time.Since(stopped)
	if werr != nil {
		t.Fatalf("scopegate exited with %v", werr)
	}
	if gap > 500*time.Millisecond {
		t.Errorf("exit came %v after the \"stopped\" line, want promptly (under 500ms)", gap)
	}
	t.Logf("exit %v after \"stopped\"", gap)
	if shutdown["timeout"] != "5s" {
		t.Errorf("shutting down: timeout = %#v, want the duration string \"5s\"", shutdown["timeout"])
	}
}
