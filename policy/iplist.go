package policy

import (
	"errors"
	"net/netip"
	"strings"
)

var errIPSyntax = errors.New("not an IP address or CIDR")

// compileIP parses an allowed_ips (or trusted proxies) entry: an IPv4 or IPv6
// address or a CIDR. IPv4-mapped IPv6 entries are unmapped so they match the
// IPv4 form of the client address. Zones are rejected.
func compileIP(src string) (netip.Prefix, error) {
	s := strings.TrimSpace(src)
	if strings.IndexByte(s, '/') >= 0 {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return netip.Prefix{}, errIPSyntax
		}
		a := p.Addr()
		if a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, errIPSyntax
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, errIPSyntax
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// prefixesContain reports whether ip (unmapped) is in any prefix. The zero
// Addr is in none.
func prefixesContain(ps []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
