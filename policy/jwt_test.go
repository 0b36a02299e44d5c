package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testKeys is a KeySet by kid that counts lookups.
type testKeys struct {
	keys  map[string]any
	calls atomic.Int64
}

func (k *testKeys) Keyfunc(t *jwt.Token) (any, error) {
	k.calls.Add(1)
	kid, _ := t.Header["kid"].(string)
	if key, ok := k.keys[kid]; ok {
		return key, nil
	}
	return nil, errors.New("unknown kid")
}

type jwtFixture struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
	keys *testKeys
}

var fixture = func() *jwtFixture {
	r, _ := rsa.GenerateKey(rand.Reader, 2048)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return &jwtFixture{rsa: r, ec: ec, ed: ed, keys: &testKeys{keys: map[string]any{
		"rsa": &r.PublicKey, "ec": &ec.PublicKey, "ed": ed.Public(),
	}}}
}()

func sign(tb testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return s
}

func claimsAt(sub string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "iss": "https://idp", "aud": "gw", "exp": exp.Unix(), "iat": t0.Unix()}
}

func jwtReq(tok string, now time.Time) *Request {
	return &Request{Method: "GET", RawPath: "/", Now: now, Cred: Credential{Kind: CredentialJWT, Token: tok}}
}

func jwtEngine(tb testing.TB, secret []byte) *Engine {
	return mustEngine(tb, EngineConfig{JWT: JWTConfig{Keys: fixture.keys, HS256Secret: secret, Issuer: "https://idp", Audience: "gw"}})
}

func TestVerifyToken(t *testing.T) {
	f := fixture
	exp := t0.Add(time.Hour)
	pubDER, _ := x509.MarshalPKIXPublicKey(&f.rsa.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	secret := []byte("0123456789abcdef0123456789abcdef")
	noneTok := func() string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claimsAt("alice", exp)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		return s
	}()
	tests := []struct {
		name   string
		secret []byte
		tok    string
		now    time.Time
		reason Reason
	}{
		{"rs256", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, claimsAt("alice", exp)), t0, ReasonNone},
		{"es256", nil, sign(t, jwt.SigningMethodES256, "ec", f.ec, claimsAt("alice", exp)), t0, ReasonNone},
		{"eddsa", nil, sign(t, jwt.SigningMethodEdDSA, "ed", f.ed, claimsAt("alice", exp)), t0, ReasonNone},
		{"hs256 with secret", secret, sign(t, jwt.SigningMethodHS256, "", secret, claimsAt("alice", exp)), t0, ReasonNone},
		{"alg none", nil, noneTok, t0, ReasonTokenInvalid},
		{"alg none with secret configured", secret, noneTok, t0, ReasonTokenInvalid},
		{"hs256 signed with rsa public key (pem)", nil, sign(t, jwt.SigningMethodHS256, "rsa", pubPEM, claimsAt("alice", exp)), t0, ReasonTokenInvalid},
		{"hs256 signed with rsa public key (der), secret set", secret, sign(t, jwt.SigningMethodHS256, "rsa", pubDER, claimsAt("alice", exp)), t0, ReasonTokenInvalid},
		{"hs256 without secret", nil, sign(t, jwt.SigningMethodHS256, "", secret, claimsAt("alice", exp)), t0, ReasonTokenInvalid},
		{"rs384 not allowed", nil, sign(t, jwt.SigningMethodRS384, "rsa", f.rsa, claimsAt("alice", exp)), t0, ReasonTokenInvalid},
		{"unknown kid", nil, sign(t, jwt.SigningMethodRS256, "other", f.rsa, claimsAt("alice", exp)), t0, ReasonTokenInvalid},
		{"kid of another key type", nil, sign(t, jwt.SigningMethodRS256, "ec", f.rsa, claimsAt("alice", exp)), t0, ReasonTokenInvalid},
		{"expired", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, claimsAt("alice", t0.Add(-time.Minute))), t0, ReasonTokenExpired},
		{"expired within leeway", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, claimsAt("alice", t0.Add(-10*time.Second))), t0, ReasonNone},
		{"expired and wrong issuer", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, jwt.MapClaims{"sub": "a", "iss": "x", "aud": "gw", "exp": t0.Add(-time.Hour).Unix()}), t0, ReasonTokenInvalid},
		{"expired with bad signature", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, claimsAt("alice", t0.Add(-time.Hour)))[:300] + "AAAA", t0, ReasonTokenInvalid},
		{"nbf in the future", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, jwt.MapClaims{"sub": "a", "iss": "https://idp", "aud": "gw", "exp": exp.Unix(), "nbf": t0.Add(time.Hour).Unix()}), t0, ReasonTokenInvalid},
		{"nbf within leeway", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, jwt.MapClaims{"sub": "a", "iss": "https://idp", "aud": "gw", "exp": exp.Unix(), "nbf": t0.Add(10 * time.Second).Unix()}), t0, ReasonNone},
		{"wrong issuer", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, jwt.MapClaims{"sub": "a", "iss": "https://evil", "aud": "gw", "exp": exp.Unix()}), t0, ReasonTokenInvalid},
		{"wrong audience", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, jwt.MapClaims{"sub": "a", "iss": "https://idp", "aud": "other", "exp": exp.Unix()}), t0, ReasonTokenInvalid},
		{"audience list", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, jwt.MapClaims{"sub": "a", "iss": "https://idp", "aud": []string{"x", "gw"}, "exp": exp.Unix()}), t0, ReasonNone},
		{"missing subject", nil, sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, jwt.MapClaims{"iss": "https://idp", "aud": "gw", "exp": exp.Unix()}), t0, ReasonTokenInvalid},
		{"tampered payload", nil, tamper(sign(t, jwt.SigningMethodRS256, "rsa", f.rsa, claimsAt("alice", exp))), t0, ReasonTokenInvalid},
		{"garbage", nil, "not.a.jwt", t0, ReasonTokenInvalid},
		{"crit header", nil, func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsAt("alice", exp))
			tok.Header["kid"], tok.Header["crit"], tok.Header["exp"] = "rsa", []string{"exp"}, t0.Unix()
			s, _ := tok.SignedString(f.rsa)
			return s
		}(), t0, ReasonTokenInvalid},
		{"oversized", nil, strings.Repeat("a", 9000), t0, ReasonTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := jwtEngine(t, tt.secret)
			c, d := e.VerifyToken(jwtReq(tt.tok, tt.now))
			if d.Reason != tt.reason {
				t.Fatalf("VerifyToken reason = %v, want %v", d.Reason, tt.reason)
			}
			if d.Reason != ReasonNone && d.Status() != 401 {
				t.Errorf("status %d, want 401", d.Status())
			}
			if d.Reason == ReasonNone && (c.Subject == "" || !d.Allowed()) {
				t.Errorf("claims = %+v, decision %+v", c, d)
			}
		})
	}
}

// TestVerifyTokenRequiresExp: a token without exp is token_invalid unless
// the configuration allows it (SPEC §3, SCOPEGATE_JWT_REQUIRE_EXP); an exp
// that is not a number is token_invalid either way.
func TestVerifyTokenRequiresExp(t *testing.T) {
	f := fixture
	noExp := sign(t, jwt.SigningMethodES256, "ec", f.ec, jwt.MapClaims{"sub": "alice", "iss": "https://idp", "aud": "gw"})
	badExp := sign(t, jwt.SigningMethodES256, "ec", f.ec, jwt.MapClaims{"sub": "alice", "iss": "https://idp", "aud": "gw", "exp": "soon"})
	withExp := sign(t, jwt.SigningMethodES256, "ec", f.ec, claimsAt("alice", t0.Add(time.Hour)))
	for _, tt := range []struct {
		name       string
		allowNoExp bool
		tok        string
		reason     Reason
	}{
		{"no exp, required (default)", false, noExp, ReasonTokenInvalid},
		{"no exp, allowed", true, noExp, ReasonNone},
		{"exp not a number, required", false, badExp, ReasonTokenInvalid},
		{"exp not a number, allowed", true, badExp, ReasonTokenInvalid},
		{"exp, required", false, withExp, ReasonNone},
		{"exp, allowed", true, withExp, ReasonNone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEngine(t, EngineConfig{JWT: JWTConfig{Keys: f.keys, Issuer: "https://idp", Audience: "gw", AllowMissingExp: tt.allowNoExp}})
			// Twice: the second answer may come from the verified-token cache.
			for i := 0; i < 2; i++ {
				c, d := e.VerifyToken(jwtReq(tt.tok, t0))
				if d.Reason != tt.reason {
					t.Fatalf("call %d: reason = %v, want %v", i, d.Reason, tt.reason)
				}
				if tt.reason == ReasonNone && c.Subject != "alice" {
					t.Fatalf("call %d: claims %+v", i, c)
				}
			}
		})
	}
}

// tamper swaps the payload for one naming another subject.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","iss":"https://idp","aud":"gw"}`))
	return strings.Join(parts, ".")
}

func TestVerifyTokenCache(t *testing.T) {
	keys := &testKeys{keys: fixture.keys.keys}
	e := mustEngine(t, EngineConfig{JWT: JWTConfig{Keys: keys, CacheMaxAge: time.Minute, SubjectClaim: "uid"}})
	tok := sign(t, jwt.SigningMethodRS256, "rsa", fixture.rsa, jwt.MapClaims{"uid": "bob", "exp": t0.Add(2 * time.Minute).Unix()})
	for i := 0; i < 3; i++ {
		c, d := e.VerifyToken(jwtReq(tok, t0))
		if d.Reason != ReasonNone || c.Subject != "bob" {
			t.Fatalf("verify %d: %v %+v", i, d.Reason, c)
		}
	}
	if n := keys.calls.Load(); n != 1 {
		t.Errorf("key lookups = %d, want 1 (cached)", n)
	}
	// Past the cache max age the signature is checked again.
	if _, d := e.VerifyToken(jwtReq(tok, t0.Add(61*time.Second))); d.Reason != ReasonNone || keys.calls.Load() != 2 {
		t.Errorf("re-verify: %v, lookups %d", d.Reason, keys.calls.Load())
	}
	// A cached token is never used past exp (+ leeway).
	if _, d := e.VerifyToken(jwtReq(tok, t0.Add(2*time.Minute+30*time.Second))); d.Reason != ReasonTokenExpired {
		t.Errorf("cached token past exp: %v, want token_expired", d.Reason)
	}
	// The cache stays bounded.
	small := mustEngine(t, EngineConfig{JWT: JWTConfig{Keys: keys, CacheSize: 8}})
	for i := 0; i < 40; i++ {
		tk := sign(t, jwt.SigningMethodES256, "ec", fixture.ec, jwt.MapClaims{"sub": "u" + itoa(i), "exp": t0.Add(time.Hour).Unix()})
		if _, d := small.VerifyToken(jwtReq(tk, t0)); d.Reason != ReasonNone {
			t.Fatalf("verify %d: %v", i, d.Reason)
		}
	}
	if n := small.jwt.cache.len(); n > 8 {
		t.Errorf("cache size %d > 8", n)
	}
}

func TestNewEngineJWTConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  JWTConfig
		ok   bool
	}{
		{"defaults", JWTConfig{}, true},
		{"none rejected", JWTConfig{Algorithms: []string{"none"}}, false},
		{"hs256 needs a secret", JWTConfig{Algorithms: []string{"HS256"}}, false},
		{"unknown alg", JWTConfig{Algorithms: []string{"XS1"}}, false},
		{"secret adds hs256", JWTConfig{HS256Secret: []byte("k")}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewEngine(EngineConfig{JWT: tt.cfg}); (err == nil) != tt.ok {
				t.Errorf("NewEngine err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// FuzzJWTHeader feeds arbitrary headers and tokens to the JWT recogniser and
// verifier: nothing panics and nothing forged verifies.
func FuzzJWTHeader(f *testing.F) {
	// Seed corpus: valid-looking headers, alg none, key confusion, junk.
	enc := base64.RawURLEncoding.EncodeToString
	f.Add(enc([]byte(`{"alg":"RS256","kid":"rsa"}`)) + "." + enc([]byte(`{"sub":"a"}`)) + ".c2ln")
	f.Add(enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(`{"sub":"a"}`)) + ".")
	f.Add(enc([]byte(`{"alg":"HS256","kid":"rsa"}`)) + "." + enc([]byte(`{"sub":"a"}`)) + ".AAAA")
	f.Add(enc([]byte(`{"alg":"EdDSA","kid":"ed","crit":["x"]}`)) + ".e30.AAAA")
	f.Add("....")
	e, _ := NewEngine(EngineConfig{JWT: JWTConfig{Keys: fixture.keys, HS256Secret: []byte("s")}})
	f.Fuzz(func(t *testing.T, tok string) {
		_ = looksLikeJWT(tok)
		if _, d := e.VerifyToken(jwtReq(tok, t0)); d.Reason == ReasonNone {
			t.Fatalf("forged token %q verified", tok)
		}
	})
}

func TestTokenCacheBound(t *testing.T) {
	c := newTokenCache(100000)
	for i := uint64(0); i < 200000; i++ {
		c.add(i*0x9E3779B97F4A7C15, &jwtEntry{until: t0.Add(time.Hour)}, t0)
	}
	if n := c.len(); n > 100000 || n < 80000 {
		t.Errorf("cache holds %d entries, want at most 100000 and most of them", n)
	}
}
