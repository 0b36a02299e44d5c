package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Tunnel is an upstream connection the upstream switched to WebSocket:
// Conn, and Buffered, the bytes the upstream sent after its 101 that were
// read with it (they go to the client first, in order).
type Tunnel struct {
	Conn     net.Conn
	Buffered []byte
}

// errNotWebSocket fails a 101 whose Upgrade is not websocket, or that does
// not name upgrade in Connection: the gateway asked for websocket only.
var errNotWebSocket = errors.New("proxy: the upstream answered 101 Switching Protocols to something other than websocket")

// Handshake sends req, an upgrade handshake already rewritten for the
// upstream (Connection: Upgrade and Upgrade: websocket set), over a
// connection of its own, and reads the answer into resp, within Timeout.
// Only a 101 with Upgrade: websocket and an upgrade token in Connection
// makes a tunnel (Upgraded, and the Tunnel); any other answer is read whole
// (up to MaxBodyBytes) into resp, its connection closed, and is OK: the
// caller relays it as an ordinary response. A connection that could not
// be opened sent nothing, so the next healthy upstream is tried.
func (p *Pool) Handshake(x *Exchange, req *fasthttp.Request, resp *fasthttp.Response, now time.Time) (Tunnel, Outcome) {
	var (
		c   net.Conn
		err error
	)
	for attempt := 0; attempt < len(p.upstreams); attempt++ {
		if attempt > 0 {
			now = time.Now()
		}
		u := p.pick(now)
		x.last, x.Upstream = u, u.url
		if c, err = u.open(u.hc.Addr); err == nil {
			break
		}
		u.markDown()
	}
	if err != nil {
		x.Err, x.Answered = err, time.Now()
		return Tunnel{}, outcomeOf(err)
	}
	x.last.setScheme(req.URI())
	req.URI().DisablePathNormalizing = true
	_ = c.SetDeadline(time.Now().Add(p.cfg.Timeout))
	br := bufio.NewReaderSize(c, p.cfg.MaxHeaderBytes)
	bw := bufio.NewWriterSize(c, 4096)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	upgraded := false
	if err == nil {
		upgraded, err = readHandshakeAnswer(br, resp, p.cfg.MaxBodyBytes)
	}
	x.Answered = time.Now()
	if err != nil || !upgraded {
		c.Close()
		if err != nil {
			x.Err = err
			return Tunnel{}, outcomeOf(err)
		}
		resp.Header.SetProtocol(strHTTP11)
		return Tunnel{}, OK
	}
	_ = c.SetDeadline(time.Time{})
	t := Tunnel{Conn: c}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		t.Buffered = bytes.Clone(b)
	}
	return t, Upgraded
}

var (
	hdrUpgrade = []byte("Upgrade")
	valWS      = []byte("websocket")
)

// readHandshakeAnswer reads the upstream's answer to an upgrade handshake
// from br into resp: interim answers (100, 102, 103) are skipped; a 101 is
// upgraded when its Upgrade is websocket and its Connection names upgrade
// (any case), and otherwise an error (the upstream switched to something
// the gateway did not ask for); any other answer is read whole, its body
// up to maxBody bytes, and is not upgraded. Nothing after a 101's header
// block is read.
func readHandshakeAnswer(br *bufio.Reader, resp *fasthttp.Response, maxBody int) (upgraded bool, err error) {
	// fasthttp skips interim answers, and a 101 has no body, so
	// ReadLimitBody stops at its header block.
	if err := resp.ReadLimitBody(br, maxBody); err != nil {
		return false, err
	}
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		return false, nil
	}
	if !bytes.EqualFold(bytes.TrimSpace(resp.Header.PeekBytes(hdrUpgrade)), valWS) || !resp.Header.ConnectionUpgrade() {
		return false, errNotWebSocket
	}
	return true, nil
}
