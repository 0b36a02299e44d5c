package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkTunnelThroughput sends 64 KiB binary messages through a
// WebSocket echo upstream over loopback, directly and through a scopegate
// tunnel, in the same run: MB/s of each (bytes one way; every message also
// comes back), so the ratio is what the tunnel costs. The writer runs
// ahead of the reader, so the pipe stays full. cpu-ns/op is the whole test
// process's CPU (client, echo upstream and scopegate) per message, which
// a busy machine disturbs less than MB/s.
//
//	go test -run '^$' -bench TunnelThroughput -benchtime 2000x ./proxy/
func BenchmarkTunnelThroughput(b *testing.B) {
	up := wsEcho(b)
	e := newEnv(b, envOptions{upstreams: []string{up}})
	b.Cleanup(e.proxy.CloseTunnels)
	msg := bytes.Repeat([]byte("m"), 64<<10)
	for _, c := range []struct {
		name, url string
		h         http.Header
	}{
		{"direct", "ws" + strings.TrimPrefix(up, "http") + "/api/ws", nil},
		{"scopegate", "ws://" + e.addr + "/api/ws", keyHeader(e, "app")},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 64 << 10, WriteBufferSize: 64 << 10}
			conn, _, err := d.Dial(c.url, c.h)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadLimit(1 << 20)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu := reportCPU(b)
			errc := make(chan error, 1)
			go func() {
				for i := 0; i < b.N; i++ {
					if err := conn.WriteMessage(websocket.BinaryMessage, msg); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			buf := make([]byte, len(msg))
			for i := 0; i < b.N; i++ {
				_, r, err := conn.NextReader()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(r, buf); err != nil {
					b.Fatalf("message %d: %v", i, err)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			cpu()
		})
	}
}
