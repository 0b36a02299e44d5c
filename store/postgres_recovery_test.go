package store_test

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/pgtest"
	"github.com/scopegate/scopegate/store"
)

// refuseAt listens on addr and closes every connection at once, as a
// database that is down but whose host answers; it counts them. stop frees
// the address.
func refuseAt(t *testing.T, addr string) (attempts *atomic.Int64, stop func()) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after the relay stops
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	attempts = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			c.Close()
		}
	}()
	stop = func() { ln.Close(); <-done }
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			stop()
		}
	})
	return attempts, stop
}

// TestPostgresRecoveryAfterOutage cuts the store off a real PostgreSQL
// (through a TCP relay) long enough for its reconnect attempts to back off
// to their cap (7 refused attempts), brings the database back right after
// one, and measures how long the store takes to be current again (store_up
// 1, a change committed during the outage served): under 2 s. With the
// backoff capped at 5 s it took about 5 s (issue 15).
func TestPostgresRecoveryAfterOutage(t *testing.T) {
	t.Parallel()
	db, dsn := pgtest.NewPool(t)
	pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "app"})
	relay := newTCPProxy(t, hostPort(t, dsn))
	addr := relay.addr
	// A connect timeout with room for a busy machine: refused attempts
	// fail at once whatever it is, and the one after the outage must not
	// time out.
	s, logs := openStore(t, dsnVia(t, dsn, addr), func(c *store.PostgresConfig) {
		c.HealthInterval = 50 * time.Millisecond
		c.ConnectTimeout = 5 * time.Second
	})
	eventually(t, 30*time.Second, "the first load", func() bool {
		c, err := s.LookupClient("app", time.Now())
		return c != nil && err == nil
	})

	relay.stop()
	attempts, unrefuse := refuseAt(t, addr)
	eventually(t, 3*time.Second, "outage noticed", func() bool { return metricValue(t, s, store.MetricStoreUp) == 0 })
	pgtest.InsertClient(t, db, pgtest.Client{ClientKey: "during-outage"})
	eventually(t, 30*time.Second, "reconnect attempts backed off to their cap", func() bool { return attempts.Load() >= 7 })

	unrefuse()
	relay.start(addr)
	took := eventually(t, 15*time.Second, "recovery", func() bool {
		c, _ := s.LookupClient("during-outage", time.Now())
		return metricValue(t, s, store.MetricStoreUp) == 1 && c != nil
	})
	t.Logf("current again %v after the database came back (%d refused attempts during the outage)", took, attempts.Load())
	if took > 2*time.Second {
		t.Errorf("recovery took %v, want under 2s; logs:\n%s", took, logs)
	}
}
