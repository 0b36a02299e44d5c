package policy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestClientIP(t *testing.T) {
	e := mustEngine(t, EngineConfig{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8"),
	}})
	tests := []struct {
		name, peer, xff, xri string
		want                 string
		reason               Reason
	}{
		{"untrusted peer ignores headers", "203.0.113.9", "1.2.3.4", "5.6.7.8", "203.0.113.9", ReasonNone},
		{"untrusted peer ignores garbage", "203.0.113.9", "garbage", "", "203.0.113.9", ReasonNone},
		{"trusted peer no headers", "127.0.0.1", "", "", "127.0.0.1", ReasonNone},
		{"single xff", "127.0.0.1", "1.2.3.4", "", "1.2.3.4", ReasonNone},
		{"right-most untrusted", "127.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.5", "", "1.2.3.4", ReasonNone},
		{"spoofed left entry ignored", "10.0.0.1", "127.0.0.1, 1.2.3.4", "", "1.2.3.4", ReasonNone},
		{"all trusted takes left-most", "127.0.0.1", "10.0.0.7, 10.0.0.5", "", "10.0.0.7", ReasonNone},
		{"ipv6", "::1", "2001:db8::1", "", "2001:db8::1", ReasonNone},
		{"v4-mapped peer is trusted", "::ffff:127.0.0.1", "1.2.3.4", "", "1.2.3.4", ReasonNone},
		{"v4-mapped entry unmapped", "127.0.0.1", "::ffff:1.2.3.4", "", "1.2.3.4", ReasonNone},
		{"x-real-ip", "127.0.0.1", "", "1.2.3.4", "1.2.3.4", ReasonNone},
		{"xff wins over x-real-ip", "127.0.0.1", "1.2.3.4", "5.6.7.8", "1.2.3.4", ReasonNone},
		{"unparsable entry", "127.0.0.1", "1.2.3.4, a", "", "", ReasonForwardedInvalid},
		{"unparsable left entry", "127.0.0.1", "unknown, 1.2.3.4", "", "", ReasonForwardedInvalid},
		{"empty entry", "127.0.0.1", "1.2.3.4,,5.6.7.8", "", "", ReasonForwardedInvalid},
		{"blank header", "127.0.0.1", " \t", "", "", ReasonForwardedInvalid},
		{"blank x-real-ip", "127.0.0.1", "", " ", "", ReasonForwardedInvalid},
		{"port not accepted", "127.0.0.1", "1.2.3.4:5678", "", "", ReasonForwardedInvalid},
		{"bracketed v6 not accepted", "127.0.0.1", "[2001:db8::1]", "", "", ReasonForwardedInvalid},
		{"zone not accepted", "127.0.0.1", "fe80::1%eth0", "", "", ReasonForwardedInvalid},
		{"bad x-real-ip", "127.0.0.1", "", "nope", "", ReasonForwardedInvalid},
		// Several X-Real-IP lines come joined with ",": the proxy appended
		// rather than replaced, so neither line can be trusted, even where
		// X-Forwarded-For would have decided.
		{"x-real-ip lines", "127.0.0.1", "", "1.2.3.4,5.6.7.8", "", ReasonForwardedInvalid},
		{"x-real-ip lines next to xff", "127.0.0.1", "1.2.3.4", "1.2.3.4,5.6.7.8", "", ReasonForwardedInvalid},
		{"x-real-ip lines from an untrusted peer are not read", "203.0.113.9", "", "1.2.3.4,5.6.7.8", "203.0.113.9", ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, r := e.ClientIP(netip.MustParseAddr(tt.peer), tt.xff, tt.xri)
			if r != tt.reason {
				t.Fatalf("ClientIP reason = %v, want %v", r, tt.reason)
			}
			if r == ReasonNone && got != netip.MustParseAddr(tt.want) {
				t.Errorf("ClientIP = %v, want %v", got, tt.want)
			}
			if r != ReasonNone && r.Status() != 400 {
				t.Errorf("status = %d", r.Status())
			}
		})
	}
}

// FuzzCIDRList compiles allowed_ips entries and X-Forwarded-For values.
func FuzzCIDRList(f *testing.F) {
	// Seed corpus: addresses, CIDRs, mapped forms, garbage, XFF lists.
	for _, s := range []string{"10.0.0.0/8", "2001:db8::/32", "::ffff:10.0.0.0/104", "1.2.3.4", "fe80::1%eth0", "1.2.3.4/33", "1.2.3.4, 5.6.7.8", " , "} {
		f.Add(s, "1.2.3.4")
	}
	e, _ := NewEngine(EngineConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	f.Fuzz(func(t *testing.T, entries, addr string) {
		var ps []netip.Prefix
		for _, s := range strings.Split(entries, ",") {
			if p, err := compileIP(s); err == nil {
				if !p.IsValid() || p.Addr().Is4In6() {
					t.Fatalf("compileIP(%q) = %v", s, p)
				}
				ps = append(ps, p)
			}
		}
		if a, err := netip.ParseAddr(addr); err == nil {
			_ = prefixesContain(ps, a)
		}
		ip, r := e.ClientIP(netip.MustParseAddr("127.0.0.1"), entries, addr)
		if r == ReasonNone && !ip.IsValid() {
			t.Fatalf("ClientIP(%q, %q) returned no address and no reason", entries, addr)
		}
	})
}
