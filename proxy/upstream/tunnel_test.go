package upstream

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestReadHandshakeAnswer(t *testing.T) {
	cases := []struct {
		name, answer string
		upgraded     bool
		fails        bool
		status       int
	}{
		{"101 websocket", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nframes", true, false, 101},
		{"101 any case", "HTTP/1.1 101 x\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n\r\n", true, false, 101},
		{"103 then 101", "HTTP/1.1 103 Early\r\nLink: <a>\r\n\r\nHTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", true, false, 101},
		{"101 h2c", "HTTP/1.1 101 x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", false, true, 101},
		{"101 no Connection", "HTTP/1.1 101 x\r\nUpgrade: websocket\r\n\r\n", false, true, 101},
		{"200 with upgrade headers", "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\nok", false, false, 200},
		{"403 close-delimited", "HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nnope", false, false, 403},
		{"garbage", "SSH-2.0-OpenSSH\r\n\r\n", false, true, 0},
	}
	for _, c := range cases {
		var resp fasthttp.Response
		br := bufio.NewReader(strings.NewReader(c.answer))
		up, err := readHandshakeAnswer(br, &resp, 1<<10)
		if up != c.upgraded || (err != nil) != c.fails || !c.fails && resp.StatusCode() != c.status {
			t.Errorf("%s: upgraded %v, err %v, status %d", c.name, up, err, resp.StatusCode())
		}
		if up {
			// Nothing after the 101's header block is consumed.
			rest, _ := br.Peek(br.Buffered())
			if c.name == "101 websocket" && string(rest) != "frames" {
				t.Errorf("%s: left %q after the 101", c.name, rest)
			}
		}
	}
}

// FuzzReadHandshakeAnswer: whatever an upstream answers a handshake, the
// reader never panics, and it reports a tunnel only for a 101 with
// Upgrade: websocket and an upgrade token in Connection, never reading
// past that 101's header block.
func FuzzReadHandshakeAnswer(f *testing.F) {
	f.Add("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello")
	f.Add("HTTP/1.1 103 Early\r\n\r\nHTTP/1.1 101 x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
	f.Add("HTTP/1.0 101 x\nUpgrade: websocket\nConnection: Upgrade\n\n")
	f.Fuzz(func(t *testing.T, answer string) {
		var resp fasthttp.Response
		br := bufio.NewReaderSize(strings.NewReader(answer), 4096)
		up, err := readHandshakeAnswer(br, &resp, 1<<12)
		if !up {
			return
		}
		if err != nil || resp.StatusCode() != 101 || !bytes.EqualFold(bytes.TrimSpace(resp.Header.Peek("Upgrade")), []byte("websocket")) || !resp.Header.ConnectionUpgrade() {
			t.Fatalf("%q: a tunnel on %d %q (err %v)", answer, resp.StatusCode(), resp.Header.Peek("Upgrade"), err)
		}
		rest, _ := br.Peek(br.Buffered())
		if !strings.HasSuffix(answer, string(rest)) {
			t.Fatalf("%q: %q left after the 101 is not the answer's tail", answer, rest)
		}
	})
}
