package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// checkIndexMatchesPeek compares headerIndex with fasthttp's own lookups
// (first occurrence, case-insensitive names) on the header block raw. It
// returns fasthttp's parse error, when fasthttp rejects raw before any
// handler would run (nothing is compared then).
func checkIndexMatchesPeek(t *testing.T, raw string) error {
	t.Helper()
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		return err
	}
	h := &req.Header
	var x headerIndex
	x.scan(h, "X-API-Key")
	for _, c := range []struct {
		name string
		got  []byte
	}{
		{"X-Request-Id", x.requestID}, {"X-API-Key", x.apiKey}, {"X-Client-Key", x.clientKey},
		{"Authorization", x.authorization}, {"Origin", x.origin}, {"X-Real-IP", x.xRealIP},
		{"X-Forwarded-Method", x.xfMethod}, {"X-Forwarded-Uri", x.xfURI},
		{"X-Original-Method", x.xOrigMethod}, {"X-Original-URI", x.xOrigURI},
	} {
		if want := h.Peek(c.name); !bytes.Equal(c.got, want) {
			t.Errorf("%q: index %s = %q, Peek = %q", raw, c.name, c.got, want)
		}
	}
	all := h.PeekAll("X-Forwarded-For")
	if x.xffLines != len(all) {
		t.Errorf("%q: %d X-Forwarded-For lines indexed, PeekAll has %d", raw, x.xffLines, len(all))
	} else if len(all) > 0 && !bytes.Equal(x.xff, all[0]) {
		t.Errorf("%q: first X-Forwarded-For %q, PeekAll %q", raw, x.xff, all[0])
	}
	if n := len(h.PeekAll("X-Real-IP")); x.xRealIPLines != n {
		t.Errorf("%q: %d X-Real-IP lines indexed, PeekAll has %d", raw, x.xRealIPLines, n)
	}
	if n := len(h.PeekAll("Origin")); x.originLines != n {
		t.Errorf("%q: %d Origin lines indexed, PeekAll has %d", raw, x.originLines, n)
	}
	underscore := false
	for k := range h.All() {
		underscore = underscore || bytes.IndexByte(k, '_') >= 0
	}
	if x.underscore != underscore {
		t.Errorf("%q: underscore = %v, want %v", raw, x.underscore, underscore)
	}
	repeated := false
	for _, n := range []string{"X-Forwarded-Method", "X-Forwarded-Uri", "X-Original-Method", "X-Original-URI"} {
		repeated = repeated || len(h.PeekAll(n)) > 1
	}
	if x.repeatedRequestField != repeated {
		t.Errorf("%q: repeatedRequestField = %v, want %v", raw, x.repeatedRequestField, repeated)
	}
	return nil
}

func TestHeaderIndexMatchesPeek(t *testing.T) {
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nx-api-key: a\r\nX-API-KEY: b\r\nauthorization: Bearer t\r\norigin: https://o\r\n\r\n",
		"GET /_auth HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\nX-Real-IP: 4.4.4.4\r\n" +
			"X-Forwarded-Method: GET\r\nX-Forwarded-Uri: /a\r\nX-Original-Method: POST\r\nX-Original-URI: /b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: r1\r\nX-Client-Key: ck\r\nX-Request-Id: r2\r\nOrigin:\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX_Api_Key: underscore\r\nX-Api-Keys: longer\r\nCookie: a=b\r\n\r\n",
		"GET /_auth HTTP/1.1\r\nHost: h\r\nX-Original-URI: /a\r\nx-original-uri: /b\r\n\r\n",
	} {
		if err := checkIndexMatchesPeek(t, raw); err != nil {
			t.Errorf("%q: fasthttp rejects the fixture: %v", raw, err)
		}
	}
	var x headerIndex
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: h\r\nOrigin:\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	x.scan(&req.Header, "X-API-Key")
	if x.origin == nil || len(x.origin) != 0 || x.apiKey != nil {
		t.Errorf("empty Origin must be present and empty, absent key nil: %q %q", x.origin, x.apiKey)
	}
}

// FuzzHeaderIndex: for any request fasthttp parses, the one-pass index
// agrees with fasthttp's per-name lookups.
func FuzzHeaderIndex(f *testing.F) {
	f.Add("x-api-key: a\r\nX-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\nOrigin: o\r\n")
	f.Add("X-Original-URI: /x\r\nX-ORIGINAL-METHOD: GET\r\nx-request-id: abc\r\n")
	// '_' spellings and repeated lines (issue 15).
	f.Add("X_Auth_User_Id: victim\r\nx-real-ip: 1.1.1.1\r\nX-Real-IP: 2.2.2.2\r\nOrigin: a\r\norigin: b\r\n")
	f.Add("X_API_Key: a\r\nx_client_key: b\r\nX-Auth_Scope: c\r\nX_Forwarded_For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n")
	f.Fuzz(func(t *testing.T, headers string) {
		_ = checkIndexMatchesPeek(t, "GET / HTTP/1.1\r\nHost: h\r\n"+headers+"\r\n\r\n") // rejected input: nothing to compare
	})
}

func BenchmarkHeaderIndex(b *testing.B) {
	var req fasthttp.Request
	_ = req.Read(bufio.NewReader(strings.NewReader("GET /_auth HTTP/1.1\r\nHost: gw\r\nUser-Agent: bench\r\n" +
		"X-Api-Key: ck_abc.secret\r\nX-Original-Uri: /api/orders/1\r\nX-Original-Method: GET\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")))
	var x headerIndex
	b.ReportAllocs()
	for b.Loop() {
		x.scan(&req.Header, "X-API-Key")
	}
}
