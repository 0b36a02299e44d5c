package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scopegate/scopegate/internal/storetest"
	"github.com/scopegate/scopegate/internal/testproc"
)

// TestServeSIGTERMUnderLoadPostgres runs `scopegate serve` (the real
// command, PostgreSQL store) under load and sends the process a real
// SIGTERM (kill(2)): no request whose connection was accepted fails, serve
// exits 0, and last_used_at holds the newest use although the periodic
// flush never ran (the shutdown flush wrote it).
func TestServeSIGTERMUnderLoadPostgres(t *testing.T) {
	dsn := parityDB(t)
	fix := storetest.Basic()
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(20 * time.Millisecond) // requests are in flight when the signal comes
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	serveEnv(t, up.URL)
	port := testproc.FreePort(t)
	t.Setenv("SCOPEGATE_STORE_FILE", "")
	t.Setenv("SCOPEGATE_DATABASE_URL", dsn)
	t.Setenv("SCOPEGATE_LISTEN_ADDR", fmt.Sprintf("127.0.0.1:%d", port))
	t.Setenv("SCOPEGATE_LAST_USED_FLUSH_INTERVAL", "1h")
	adminAddr := fmt.Sprintf("127.0.0.1:%d", testproc.FreePort(t))
	t.Setenv("SCOPEGATE_ADMIN_ADDR", adminAddr)
	t.Setenv("SCOPEGATE_LOG_LEVEL", "warn")

	exit := make(chan int, 1)
	go func() { exit <- run([]string{"serve"}, io.Discard, io.Discard) }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr, exit)

	tok := fix.Token("app")
	var (
		mu          sync.Mutex
		ok, refused int
		reset       int // connections the kernel had queued but serve never accepted
		lost        []error
		lastOKSent  time.Time
	)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// Dial first: a refused dial means "not accepted", which is
				// not an in-flight request.
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					mu.Lock()
					refused++
					mu.Unlock()
					return
				}
				c.Close()
				sent := time.Now()
				req, _ := http.NewRequest("GET", "http://"+addr+"/api/things", nil)
				req.Header.Set("X-API-Key", tok)
				resp, err := client.Do(req)
				if err != nil {
					var op *net.OpError
					if errors.As(err, &op) && op.Op == "dial" {
						mu.Lock()
						refused++
						mu.Unlock()
						return
					}
					mu.Lock()
					if errors.Is(err, syscall.ECONNRESET) {
						// The listen backlog is reset when the listener
						// closes: serve never accepted this connection.
						// Checked below against what reached the upstream.
						reset++
					} else {
						lost = append(lost, err)
					}
					mu.Unlock()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode == 200 {
					ok++
					if sent.After(lastOKSent) {
						lastOKSent = sent
					}
				} else {
					lost = append(lost, fmt.Errorf("status %d", resp.StatusCode))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	// The admin listener exposes the proxy's and the store's metrics.
	if resp, err := http.Get("http://" + adminAddr + "/metrics"); err != nil {
		t.Errorf("/metrics: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, m := range []string{`scopegate_decisions_total{result="allow",reason=""}`, "scopegate_decision_duration_seconds_bucket", "scopegate_store_cache_hits_total", "scopegate_change_feed_lag_seconds", "scopegate_last_used_flushes_total", "scopegate_upstream_errors_total"} {
			if !strings.Contains(string(b), m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	}
	if resp, err := http.Get("http://" + adminAddr + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz: %v %v", resp, err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-exit:
		if code != exitOK {
			t.Errorf("serve exited %d, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	wg.Wait()
	t.Logf("load: %d answered 200, %d workers stopped by a refused connection, %d by a reset of a never-accepted connection, %d lost; upstream saw %d", ok, refused, reset, len(lost), hits.Load())
	if len(lost) > 0 {
		t.Errorf("in-flight requests lost at shutdown: %v", lost)
	}
	if int(hits.Load()) != ok {
		t.Errorf("the upstream served %d requests but %d answers reached the clients: an accepted request was lost", hits.Load(), ok)
	}
	if ok == 0 {
		t.Fatal("no request succeeded")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var last *time.Time
	if err := conn.QueryRow(ctx, `SELECT last_used_at FROM api_clients WHERE client_key = 'app'`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	if last == nil || last.Before(lastOKSent.Add(-time.Millisecond)) {
		t.Errorf("last_used_at %v, want ≥ %v (the newest allowed request)", last, lastOKSent)
	}
}

func waitListening(t *testing.T, addr string, exit <-chan int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case code := <-exit:
			t.Fatalf("serve exited %d before listening", code)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not listening on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
