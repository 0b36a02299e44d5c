package policy

import (
	"net/netip"
	"strings"
)

// IsTrustedProxy reports whether peer is in SCOPEGATE_TRUSTED_PROXIES
// ([EngineConfig.TrustedProxies]). It does not allocate.
func (e *Engine) IsTrustedProxy(peer netip.Addr) bool {
	return prefixesContain(e.trusted, peer)
}

// ClientIP returns the client address of SPEC §5. For an untrusted peer it is
// the peer, and the forwarded headers are never read. For a trusted peer it
// is the right-most address of xff that is not itself a trusted proxy (all
// trusted: the left-most), else, when xff is empty, xRealIP, else the peer.
// xff is the X-Forwarded-For value, several headers joined with ",";
// xRealIP is the X-Real-IP value, several headers joined with "," too.
//
// X-Real-IP names one address: a list (several lines, as a proxy that
// appends rather than replaces leaves them) is ReasonForwardedInvalid
// whether or not xff is present, since which line the proxy set cannot be
// known.
//
// Security: from a trusted peer, any entry that is not a plain IPv4 or IPv6
// address — empty entries, "IP:port", "[v6]", zones, "unknown", obfuscated
// RFC 7239 identifiers — makes the whole header ReasonForwardedInvalid; the
// request is denied rather than falling back to the peer, so a policy is
// never skipped because an address could not be read. Only plain addresses
// are accepted because that is what X-Forwarded-For carries (nginx
// $proxy_add_x_forwarded_for, Traefik, Envoy); a port is a proxy
// misconfiguration worth surfacing. IPv4-mapped IPv6 addresses are unmapped.
// It does not allocate.
func (e *Engine) ClientIP(peer netip.Addr, xff, xRealIP string) (netip.Addr, Reason) {
	a, r := e.clientIP(peer, xff, xRealIP)
	if e.trace != nil {
		e.traceClientIP(peer, xff, xRealIP, a, r)
	}
	return a, r
}

func (e *Engine) clientIP(peer netip.Addr, xff, xRealIP string) (netip.Addr, Reason) {
	peer = peer.Unmap()
	if !e.IsTrustedProxy(peer) {
		return peer, ReasonNone
	}
	if strings.IndexByte(xRealIP, ',') >= 0 {
		return netip.Addr{}, ReasonForwardedInvalid
	}
	if xff != "" { // present: a blank value is an empty entry, not an absent header
		var chosen, last netip.Addr
		rest := xff
		for {
			i := strings.LastIndexByte(rest, ',')
			entry := strings.TrimSpace(rest[i+1:])
			a, ok := parseForwardedAddr(entry)
			if !ok {
				return netip.Addr{}, ReasonForwardedInvalid
			}
			last = a
			if !chosen.IsValid() && !e.IsTrustedProxy(a) {
				chosen = a
			}
			if i < 0 {
				break
			}
			rest = rest[:i]
		}
		if !chosen.IsValid() {
			chosen = last // every hop is a trusted proxy: the left-most
		}
		return chosen, ReasonNone
	}
	if xRealIP != "" {
		x := strings.TrimSpace(xRealIP)
		a, ok := parseForwardedAddr(x)
		if !ok {
			return netip.Addr{}, ReasonForwardedInvalid
		}
		return a, ReasonNone
	}
	return peer, ReasonNone
}

// parseForwardedAddr parses a plain IP address without zone.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
