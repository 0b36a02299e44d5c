package proxy

import (
	"bytes"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// hopByHop are the connection-specific fields of RFC 9110 §7.6.1 plus the
// legacy ones net/http/httputil removes too. Transfer-Encoding and framing
// are managed by fasthttp.
var hopByHop = [...][]byte{
	[]byte("Connection"),
	[]byte("Proxy-Connection"),
	[]byte("Keep-Alive"),
	[]byte("Proxy-Authenticate"),
	[]byte("Proxy-Authorization"),
	[]byte("Te"),
	[]byte("Trailer"),
	[]byte("Transfer-Encoding"),
	[]byte("Upgrade"),
}

// framing are names a Connection header may list that must not be removed
// from the forwarded message because fasthttp manages them (removing
// Content-Length or Host would change how the body or target is read).
func isFraming(name []byte) bool {
	for _, f := range [...]string{"Host", "Content-Length", "Transfer-Encoding", "Content-Type"} {
		if bytes.EqualFold(name, s2b(f)) {
			return true
		}
	}
	return false
}

// addName queues a header name for deletion, copying it into st.keys so it
// survives the deletions.
func (st *reqState) addName(name []byte) {
	start := len(st.keys)
	st.keys = append(st.keys, name...)
	st.names = append(st.names, st.keys[start:len(st.keys):len(st.keys)])
}

// connectionTokens queues every field named in the Connection header(s).
// It must run before the hop-by-hop removal (which drops Connection itself).
func (st *reqState) connectionTokens(values [][]byte) {
	for _, v := range values {
		for len(v) > 0 {
			var tok []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, nil
			}
			tok = bytes.TrimSpace(tok)
			if len(tok) == 0 || isFraming(tok) {
				continue
			}
			st.addName(tok)
		}
	}
}

// hasIdentityPrefix reports whether name starts with prefix, ignoring case
// and reading '_' as '-' (CGI-style servers map both to the same variable).
func hasIdentityPrefix(name []byte, prefix string) bool {
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if foldHeaderByte(name[i]) != foldHeaderByte(prefix[i]) {
			return false
		}
	}
	return true
}

func foldHeaderByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + ('a' - 'A')
	case c == '_':
		return '-'
	}
	return c
}

// cleanRequestHeaders removes from the request to be forwarded: the fields
// named in Connection (first), the hop-by-hop fields, and every field with
// the identity prefix. It keeps Connection: close semantics for the client
// connection.
func (p *Proxy) cleanRequestHeaders(h *fasthttp.RequestHeader, st *reqState) {
	st.names = st.names[:0]
	st.keys = st.keys[:0]
	st.connectionTokens(h.PeekAll("Connection"))
	for k := range h.All() {
		if hasIdentityPrefix(k, p.prefix) {
			st.addName(k)
		}
	}
	for _, n := range st.names {
		h.DelBytes(n)
	}
	for _, n := range hopByHop {
		h.DelBytes(n)
	}
	st.names = st.names[:0]
	st.keys = st.keys[:0]
}

// cleanResponseHeaders removes hop-by-hop fields (and those named in
// Connection) from the upstream's response before it goes to the client.
func cleanResponseHeaders(h *fasthttp.ResponseHeader, st *reqState) {
	st.names = st.names[:0]
	st.keys = st.keys[:0]
	st.connectionTokens(h.PeekAll("Connection"))
	close := h.ConnectionClose()
	for _, n := range st.names {
		h.DelBytes(n)
	}
	for _, n := range hopByHop {
		if bytes.Equal(n, hopByHop[0]) || bytes.Equal(n, hopByHop[7]) {
			continue // managed by fasthttp
		}
		h.DelBytes(n)
	}
	if close {
		h.SetConnectionClose()
	}
	st.names = st.names[:0]
	st.keys = st.keys[:0]
}

// setForwarded sets X-Forwarded-For/-Proto/-Host. From a trusted peer the
// incoming values are kept (the peer is appended to X-Forwarded-For); from
// any other peer they are replaced, and its Forwarded and X-Real-IP headers
// dropped, so a client cannot spoof its address to the upstream.
func (p *Proxy) setForwarded(ctx *fasthttp.RequestCtx, st *reqState, peer netip.Addr, trusted bool) {
	h := &ctx.Request.Header
	b := st.scratch[:0]
	if trusted {
		all := h.PeekAll(string(hdrXFF))
		for i, v := range all {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, v...)
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
	} else {
		h.DelBytes(hdrForwarded)
		h.DelBytes(hdrXRealIP)
	}
	if peer.IsValid() {
		b = peer.AppendTo(b)
	}
	h.DelBytes(hdrXFF)
	if len(b) > 0 {
		h.SetBytesKV(hdrXFF, b)
	}
	if !trusted || len(h.PeekBytes(hdrXFProto)) == 0 {
		if ctx.IsTLS() {
			h.SetBytesKV(hdrXFProto, strHTTPS)
		} else {
			h.SetBytesKV(hdrXFProto, strHTTP)
		}
	}
	if !trusted || len(h.PeekBytes(hdrXFHost)) == 0 {
		if host := h.Host(); len(host) > 0 {
			h.SetBytesKV(hdrXFHost, host)
		} else {
			h.DelBytes(hdrXFHost)
		}
	}
	st.scratch = b[:0]
}
