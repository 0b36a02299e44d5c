package policy

import (
	"encoding/base64"

	"crypto/sha256"
	"encoding/hex"
	"golang.org/x/crypto/argon2"
	"net/netip"
	"testing"
	"time"
)

// t0 is the fixed clock of the tests.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sha256Hex(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(s[:])
}

func intp(n int) *int { return &n }

func timep(t time.Time) *time.Time { return &t }

// mustClient compiles rec and fails the test on any compile error.
func mustClient(tb testing.TB, rec ClientRecord) *Client {
	tb.Helper()
	c, errs := CompileClient(rec)
	if len(errs) > 0 {
		tb.Fatalf("CompileClient: %v", errs)
	}
	return c
}

func mustEngine(tb testing.TB, cfg EngineConfig) *Engine {
	tb.Helper()
	e, err := NewEngine(cfg)
	if err != nil {
		tb.Fatalf("NewEngine: %v", err)
	}
	return e
}

func mustRoutes(tb testing.TB, yml string) *Routes {
	tb.Helper()
	r, _, err := ParseRoutes([]byte(yml))
	if err != nil {
		tb.Fatalf("ParseRoutes: %v", err)
	}
	return r
}

// values is a ValueSource over maps; names in twice occur two times.
type values struct {
	h, q  map[string]string
	twice map[string]bool
}

func (v values) Header(n string) (string, int) { return v.get(v.h, n) }
func (v values) Query(n string) (string, int)  { return v.get(v.q, n) }

func (v values) get(m map[string]string, n string) (string, int) {
	s, ok := m[n]
	switch {
	case !ok:
		return "", 0
	case v.twice[n]:
		return s, 2
	}
	return s, 1
}

// apiReq builds a request carrying an API key.
func apiReq(method, raw, token string) *Request {
	return &Request{
		Method: method, RawPath: raw, Now: t0,
		ClientIP: netip.MustParseAddr("10.1.2.3"),
		Cred:     ParseCredential(CredentialHeaders{APIKey: token}),
	}
}

// decide runs Match and AuthorizeClient the way the proxy does.
func decideAPIKey(e *Engine, req *Request, lookup func(string) *Client) Decision {
	m, d := e.Match(req)
	if d.Reason != ReasonNone || m.Public {
		return d
	}
	return e.AuthorizeClient(req, &m, lookup(req.Cred.ClientKey))
}

func argonTestKey(secret, salt string, t, m uint32, p uint8) string {
	return base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte(secret), []byte(salt), t, m, p, 16))
}
