package proxy

import (
	"bytes"
	"iter"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/scopegate/scopegate/internal/bytesconv"
	"github.com/scopegate/scopegate/policy"
)

// hopByHop are the connection-specific fields of RFC 9110 §7.6.1 plus the
// legacy ones net/http/httputil removes too. Transfer-Encoding and framing
// are managed by fasthttp.
var hopByHop = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
	// HTTP2-Settings goes with Upgrade: h2c (RFC 7540 §3.2), which the
	// gateway never forwards (h2c smuggling).
	"Http2-Settings",
}

// framing are names a Connection header may list that must not be removed
// from the forwarded message because fasthttp manages them (removing
// Content-Length or Host would change how the body or target is read).
var framing = [...]string{"Host", "Content-Length", "Transfer-Encoding", "Content-Type"}

// addName queues a header name, copying it into st.keys so it survives the
// deletions.
func (st *reqState) addName(name []byte) {
	start := len(st.keys)
	st.keys = append(st.keys, name...)
	st.names = append(st.names, st.keys[start:len(st.keys):len(st.keys)])
}

// connectionTokens queues every field named in a Connection value.
func (st *reqState) connectionTokens(v []byte) {
	for tok := range listItems(v) {
		if len(tok) == 0 || nameIn(tok, framing[:]) {
			continue
		}
		st.addName(tok)
	}
}

// listItems yields the elements of a comma-separated field value, trimmed.
func listItems(v []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(v) > 0 {
			var tok []byte
			if i := bytes.IndexByte(v, ','); i >= 0 {
				tok, v = v[:i], v[i+1:]
			} else {
				tok, v = v, nil
			}
			if !yield(bytes.TrimSpace(tok)) {
				return
			}
		}
	}
}

// The removal below takes two passes over a message's fields (ranging over
// h.All() directly, which does not allocate): the first queues the names
// the Connection fields list, the second queues the exact spelling of every
// field to remove: the hop-by-hop fields, the listed ones and, for requests,
// those with the identity prefix. Names are compared case-insensitively (RFC
// 9110 §5.1): a response read with its names kept as the upstream spelled
// them still loses "keep-alive". Only fields present are deleted, so a clean
// message costs the two passes and no deletion.

// connectionField queues the names a Connection field lists.
func (st *reqState) connectionField(k, v []byte) {
	if equalFoldASCII(k, "Connection") {
		st.connectionTokens(v)
	}
}

// hopField reports whether k, of class c (classOf), is to be removed, given
// the first tokens names of st.names (the Connection tokens).
func (st *reqState) hopField(k []byte, c fieldClass, tokens int, identityPrefix string) bool {
	if c&classHop != 0 || identityPrefix != "" && policy.HasHeaderPrefix(bytesconv.String(k), identityPrefix) {
		return true
	}
	for _, t := range st.names[:tokens] {
		if bytes.EqualFold(k, t) {
			return true
		}
	}
	return false
}

// cleanRequestHeaders removes from the request to be forwarded the
// hop-by-hop fields, the fields Connection names, every field with the
// identity prefix, and every field dropBeforeForwarding names (see there;
// replaceForwarded: the peer is untrusted). The caller keeps
// Connection: close semantics for the client connection.
func (p *Proxy) cleanRequestHeaders(h *fasthttp.RequestHeader, st *reqState, replaceForwarded bool) {
	st.names, st.keys = st.names[:0], st.keys[:0]
	for k, v := range h.All() {
		st.connectionField(k, v)
	}
	tokens := p.keepDecisionRead(st, len(st.names))
	for k := range h.All() {
		c := classOf(k)
		if st.hopField(k, c, tokens, p.prefix) || dropBeforeForwarding(k, c, replaceForwarded) {
			st.addName(k)
		}
	}
	for _, n := range st.names[tokens:] {
		h.DelBytes(n)
	}
	// A chunked body's trailer section is read later, while the body
	// streams: limitedBody drops it.
	st.names, st.keys = st.names[:0], st.keys[:0]
}

// keepDecisionRead drops from the first tokens names of st.names (the
// request's Connection tokens) every field the decision read, and returns
// how many are left. A client that lists X-Site-Key in Connection would
// otherwise have the upstream get the identity of a scope without the
// header that named it: a field the decision acted on is not hop-by-hop, so
// it is kept, like the framing fields.
func (p *Proxy) keepDecisionRead(st *reqState, tokens int) int {
	kept := st.names[:0]
	for _, t := range st.names[:tokens] {
		if !p.decisionRead(st, t) {
			kept = append(kept, t)
		}
	}
	st.names = kept
	return len(kept)
}

// readByDecision are the request fields any decision may read: the
// credential fields other than the API key header (configurable), Origin,
// and the client address fields of a trusted peer.
var readByDecision = [...]string{"Authorization", "X-Client-Key", "Cookie", "Origin", "X-Forwarded-For", "X-Real-Ip"}

// decisionRead reports whether the decision read the request field name:
// one of readByDecision, the API key header, or a header a route's scope
// read (valueSource.Header records them).
func (p *Proxy) decisionRead(st *reqState, name []byte) bool {
	if nameIn(name, readByDecision[:]) || equalFoldASCII(name, p.cfg.APIKeyHeader) {
		return true
	}
	for _, r := range st.values.read {
		if equalHeaderName(name, r) {
			return true
		}
	}
	return false
}

// identityHeaderSent reports whether the request carries a field
// [policy.IdentityHeaderSpoof] names (X_Auth_User_Id). In forward-auth mode
// scopegate cannot remove it from
// what the proxy in front passes on, and CGI-style servers read it as the
// identity header: the request is refused (identity_header_sent). The
// proxy mode drops every '_' name (dropBeforeForwarding), and the gRPC
// check names it in headers_to_remove (st.removesHeaders). Only a request
// whose index saw a '_' name is looked at again.
func (p *Proxy) identityHeaderSent(h *fasthttp.RequestHeader, st *reqState) bool {
	if !st.hdr.underscore || p.prefix == "" || st.removesHeaders {
		return false
	}
	for k := range h.All() {
		if policy.IdentityHeaderSpoof(bytesconv.String(k), p.prefix) {
			return true
		}
	}
	return false
}

// cleanResponseHeaders removes the hop-by-hop fields (and those Connection
// names) from the upstream's response before it goes to the client,
// whatever their case, and the fields the gateway sets itself (X-Request-Id;
// the RateLimit ones when rateLimit). Transfer-Encoding stays with fasthttp,
// which frames the answer; a Connection: close from the upstream closes the
// upstream connection only.
func cleanResponseHeaders(h *fasthttp.ResponseHeader, st *reqState, rateLimit bool) {
	st.names, st.keys = st.names[:0], st.keys[:0]
	for k, v := range h.All() {
		st.connectionField(k, v)
	}
	tokens := len(st.names)
	for k := range h.All() {
		if st.hopField(k, classOf(k), tokens, "") && !isTransferEncoding(k) || replacedInResponse(k, rateLimit) {
			st.addName(k)
		}
	}
	for _, n := range st.names[tokens:] {
		h.DelBytes(n)
	}
	// An upstream's Connection: close (Connection is hop-by-hop) closes the
	// upstream connection only: fasthttp decided that when the answer
	// arrived. The client's keep-alive connection stays open, as with
	// nginx; a close-delimited body reaches it chunked (or whole, with its
	// length, for an HTTP/1.0 client).
	h.ResetConnectionClose()
	st.names, st.keys = st.names[:0], st.keys[:0]
}

// dropBeforeForwarding reports whether the request field name goes before
// forwarding:
//   - every name with an underscore (X_Auth_Type, X_Site_Key,
//     X_Forwarded_For): CGI-style servers read it as the dashed name, which
//     the checks saw with another value or not at all; nginx drops them too
//     (underscores_in_headers off);
//   - X-Request-Id (forward sets its own) and Expect (the gateway already
//     answered any 100-continue, as fasthttp does before the handler runs);
//   - the method and URL overrides some frameworks honour
//     (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override,
//     X-Original-URL, X-Rewrite-URL): the request was authorized with its
//     own method and path, so it must not run as another;
//   - from an untrusted peer (replaceForwarded), every field that only a
//     trusted proxy may set (SPEC §5): Forwarded, every X-Forwarded-*
//     (-For/-Proto/-Host, which setForwarded sets afresh, -Port, -Ssl,
//     -Scheme, -Server, -Uri, -Method, -Prefix...), the client address
//     fields frameworks and CDNs use (X-Real-IP, True-Client-IP,
//     Client-IP, CF-Connecting-IP...), Front-End-Https, and the forwarded
//     request fields of nginx's convention (X-Original-URI/-Method).
//
// c is name's class (classOf).
func dropBeforeForwarding(name []byte, c fieldClass, replaceForwarded bool) bool {
	if !policy.ForwardedHeaderName(bytesconv.String(name)) {
		return true // so the lists below need no '_' spellings
	}
	return c&classDroppedAny != 0 ||
		replaceForwarded && (c&classDroppedUntrusted != 0 || hasPrefixFold(name, "X-Forwarded-"))
}

// fieldClass tells which of the lists above (and hopByHop) a field name is
// in: each name of a request or response is classified once, by a look at
// the few listed names of its length, rather than compared with every
// list in turn.
type fieldClass uint8

const (
	classHop              fieldClass = 1 << iota // hopByHop
	classDroppedAny                              // droppedFromAnyPeer, requestOverrides
	classDroppedUntrusted                        // droppedFromUntrusted
)

// classedName is a listed name and its class.
type classedName struct {
	name  string
	class fieldClass
}

// fieldClasses holds the listed names by length (immutable once built).
var fieldClasses = buildFieldClasses()

func buildFieldClasses() [][]classedName {
	var byLen [][]classedName
	add := func(names []string, c fieldClass) {
		for _, n := range names {
			for len(byLen) <= len(n) {
				byLen = append(byLen, nil)
			}
			found := false
			for i := range byLen[len(n)] {
				if e := &byLen[len(n)][i]; equalFoldASCII([]byte(e.name), n) {
					e.class |= c
					found = true
				}
			}
			if !found {
				byLen[len(n)] = append(byLen[len(n)], classedName{n, c})
			}
		}
	}
	add(hopByHop[:], classHop)
	add(droppedFromAnyPeer[:], classDroppedAny)
	add(requestOverrides[:], classDroppedAny)
	add(droppedFromUntrusted[:], classDroppedUntrusted)
	return byLen
}

// classOf returns the class of the field name, ignoring ASCII case; 0 when
// no list names it.
func classOf(name []byte) fieldClass {
	if len(name) >= len(fieldClasses) {
		return 0
	}
	var c fieldClass
	for _, e := range fieldClasses[len(name)] {
		if equalFoldASCII(name, e.name) {
			c |= e.class
		}
	}
	return c
}

// The request fields dropBeforeForwarding removes, by peer.
var (
	droppedFromAnyPeer = [...]string{"X-Request-Id", "Expect"}
	// requestOverrides are the method and URL overrides some frameworks
	// honour; the shipped front-end configs remove the same list.
	requestOverrides = [...]string{
		"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X-Original-URL", "X-Rewrite-URL",
	}
	// droppedFromUntrusted: besides every X-Forwarded-* name.
	droppedFromUntrusted = [...]string{
		"Forwarded", "X-Real-Ip", "True-Client-Ip", "Client-Ip", "Cf-Connecting-Ip", "Front-End-Https",
		"X-Client-Ip", "X-Cluster-Client-Ip", "Fastly-Client-Ip",
		"X-Original-URI", "X-Original-Method",
	}
)

// hasPrefixFold reports whether name starts with prefix, ignoring ASCII case.
func hasPrefixFold(name []byte, prefix string) bool {
	return len(name) >= len(prefix) && equalFoldASCII(name[:len(prefix)], prefix)
}

// nameIn reports whether name is one of names, ignoring ASCII case.
func nameIn(name []byte, names []string) bool {
	for _, s := range names {
		if equalFoldASCII(name, s) {
			return true
		}
	}
	return false
}

// equalHeaderName reports whether name is s ignoring case and reading '_'
// as '-' (policy.SameHeaderName).
func equalHeaderName(name []byte, s string) bool {
	return policy.SameHeaderName(bytesconv.String(name), s)
}

// rateLimitResponse names the RateLimit fields setRateLimitHeaders writes
// (the same variables, so a new one is also stripped from the upstream).
var rateLimitResponse = [...]string{
	bytesconv.String(hdrRateLimitPolicy), bytesconv.String(hdrRateLimit), bytesconv.String(hdrRateLimitLimit), bytesconv.String(hdrRateLimitRemain), bytesconv.String(hdrRateLimitReset),
}

// replacedInResponse reports whether a response field is one the gateway
// sets on a proxied answer: X-Request-Id, and the RateLimit ones when the
// request reached a bucket (rateLimit). The upstream's own, in any
// spelling, are removed first so the client never gets two.
func replacedInResponse(name []byte, rateLimit bool) bool {
	if equalHeaderName(name, "X-Request-Id") {
		return true
	}
	if rateLimit {
		for _, s := range rateLimitResponse {
			if equalHeaderName(name, s) {
				return true
			}
		}
	}
	return false
}

func isTransferEncoding(name []byte) bool {
	return equalFoldASCII(name, "Transfer-Encoding")
}

// setForwarded sets X-Forwarded-For/-Proto/-Host (the host the upstream
// gets as Host). From a trusted peer the
// incoming values are kept (the peer is appended to X-Forwarded-For); from
// any other peer they are replaced: cleanRequestHeaders has already removed
// its Forwarded, X-Real-IP and X-Forwarded-* fields (every line, any case),
// so a client cannot spoof its address to the upstream.
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
		if len(all) > 0 {
			h.DelBytes(hdrXFF)
		}
	}
	if peer.IsValid() {
		b = peer.AppendTo(b)
	}
	if len(b) > 0 {
		h.SetCanonical(hdrXFF, b)
	}
	if !trusted || len(h.PeekBytes(hdrXFProto)) == 0 {
		if ctx.IsTLS() {
			h.SetCanonical(hdrXFProto, strHTTPS)
		} else {
			h.SetCanonical(hdrXFProto, strHTTP)
		}
	}
	if !trusted || len(h.PeekBytes(hdrXFHost)) == 0 {
		// The request URI's host: for an absolute-form target its
		// authority, which is what the upstream gets as Host (RFC 9112
		// §3.2.2), not a Host field that may say otherwise.
		if host := ctx.Request.URI().Host(); len(host) > 0 {
			h.SetCanonical(hdrXFHost, host)
		} else if trusted {
			h.DelBytes(hdrXFHost)
		}
	}
	st.scratch = b[:0]
}
