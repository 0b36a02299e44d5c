package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestProxyStreamsResponse: the upstream's response body reaches the client
// while the upstream is still writing it (not buffered whole).
func TestProxyStreamsResponse(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("a", 64<<10)+"\nFIRST\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "SECOND\n")
	}))
	defer up.Close()
	defer close(release)
	e := newEnv(t, envOptions{upstreams: []string{up.URL}})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, reqText("GET", "/api/stream", "X-API-Key", e.fix.Token("app")))
	c.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("first part not streamed before the upstream finished: %v", err)
		}
		if line == "FIRST\n" {
			break
		}
	}
}
