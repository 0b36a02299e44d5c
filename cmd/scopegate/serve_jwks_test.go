package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeIdP is an identity provider on loopback: OpenID discovery at
// /.well-known/openid-configuration and a JWKS at /jwks holding the current
// RS256 key. While down it answers 503; every answer takes delay.
type fakeIdP struct {
	url      string
	keys     map[string]*rsa.PrivateKey
	current  atomic.Value // the kid the JWKS serves
	down     atomic.Bool
	jwksHits atomic.Int64
	discHits atomic.Int64 // discovery documents served
}

// newFakeIdP starts a fakeIdP with an RSA key per kid, serving the first.
func newFakeIdP(t *testing.T, delay time.Duration, kids ...string) *fakeIdP {
	t.Helper()
	p := &fakeIdP{keys: map[string]*rsa.PrivateKey{}}
	for _, kid := range kids {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		p.keys[kid] = k
	}
	p.current.Store(kids[0])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if p.down.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			p.discHits.Add(1)
			json.NewEncoder(w).Encode(map[string]string{"issuer": p.url, "jwks_uri": p.url + "/jwks"})
		case "/jwks":
			p.jwksHits.Add(1)
			kid := p.current.Load().(string)
			key := p.keys[kid]
			b64 := base64.RawURLEncoding.EncodeToString
			json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
				"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
				"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
			}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// sign returns an RS256 token for alice with kid in its header, signed with
// that kid's key (or, for a kid the provider does not have, with any key).
func (p *fakeIdP) sign(t *testing.T, kid, iss string) string {
	t.Helper()
	key := p.keys[kid]
	if key == nil {
		for _, k := range p.keys {
			key = k
			break
		}
	}
	claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	if iss != "" {
		claims["iss"] = iss
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// subEcho is an upstream that answers "sub=" + X-Auth-User-Sub.
func subEcho(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("sub=" + r.Header.Get("X-Auth-User-Sub")))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestServeJWKSFromIssuerDiscovery: with only SCOPEGATE_JWT_ISSUER set, the
// keys come from the issuer's discovery document's jwks_uri; an RS256 token
// of a known user passes, iss is checked, and tokens with an unknown kid are
// token_invalid without waiting for the refetch limiter and refetch the set
// at most once per 5 s.
func TestServeJWKSFromIssuerDiscovery(t *testing.T) {
	idp := newFakeIdP(t, 0, "k1")
	serveEnv(t, subEcho(t))
	t.Setenv("SCOPEGATE_JWT_ISSUER", idp.url)
	g := startServe(t)
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+idp.sign(t, "k1", idp.url)); s != 200 || body != "sub=alice" {
		t.Fatalf("RS256 token from the JWKS: %d %s", s, body)
	}
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+idp.sign(t, "k1", "https://other.example")); s != 401 || !strings.Contains(body, "token_invalid") {
		t.Errorf("wrong issuer: %d %s", s, body)
	}
	before := idp.jwksHits.Load()
	start := time.Now()
	for i := 0; i < 5; i++ {
		if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+idp.sign(t, "unknown", idp.url)); s != 401 || !strings.Contains(body, "token_invalid") {
			t.Errorf("unknown kid: %d %s", s, body)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("5 unknown-kid requests took %v: requests wait for the refetch limiter", d)
	}
	if n := idp.jwksHits.Load() - before; n > 1 {
		t.Errorf("unknown kid refetched the JWKS %d times within 5 s, want at most 1", n)
	}
}

// TestServeIssuerDownAtStart: an identity provider that does not answer
// OpenID discovery at start-up does not stop serve (a service that is down
// is not invalid configuration): its RS256 tokens are token_invalid until
// the background retry finds the keys, then they pass. An issuer that is
// not an http(s) URL is still invalid configuration.
func TestServeIssuerDownAtStart(t *testing.T) {
	idp := newFakeIdP(t, 0, "k1")
	idp.down.Store(true)
	backend := subEcho(t)
	serveEnv(t, backend)
	t.Setenv("SCOPEGATE_JWT_ISSUER", idp.url)
	g := startServe(t)
	waitLog(t, g.logs, "OpenID discovery failed")
	signed := idp.sign(t, "k1", idp.url)
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+signed); s != 401 || !strings.Contains(body, "token_invalid") {
		t.Errorf("before discovery: %d %s, want 401 token_invalid", s, body)
	}
	idp.down.Store(false)
	waitLog(t, g.logs, "OpenID discovery succeeded")
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+signed); s != 200 || body != "sub=alice" {
		t.Errorf("after discovery: %d %s, want 200 sub=alice", s, body)
	}

	t.Run("issuer not a URL", func(t *testing.T) {
		serveEnv(t, backend)
		t.Setenv("SCOPEGATE_JWT_ISSUER", "not a url")
		var stdout, stderr bytes.Buffer
		if code := run([]string{"serve"}, &stdout, &stderr); code != exitConfig || !strings.Contains(stderr.String(), "SCOPEGATE_JWT_ISSUER") {
			t.Errorf("exit %d, stderr %q; want 2 naming SCOPEGATE_JWT_ISSUER", code, stderr.String())
		}
	})
}

// TestServeJWKSKeyRotation: when the identity provider rotates to a new key,
// the first token with the new kid refetches the set (the unknown-kid
// refresh) and passes, even when the JWKS takes a while to answer, as a
// remote one does. The refetch used to run under the 1 ms limiter-wait
// deadline and failed, so new keys were only seen at the periodic refresh.
func TestServeJWKSKeyRotation(t *testing.T) {
	idp := newFakeIdP(t, 30*time.Millisecond, "old", "new") // a remote JWKS is not instant
	serveEnv(t, subEcho(t))
	t.Setenv("SCOPEGATE_JWT_JWKS_URL", idp.url+"/jwks")
	g := startServe(t)
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+idp.sign(t, "old", "")); s != 200 {
		t.Fatalf("token of the first key: %d %s", s, body)
	}
	idp.current.Store("new")
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+idp.sign(t, "new", "")); s != 200 || body != "sub=alice" {
		t.Errorf("first token of the rotated key: %d %s, want 200 after the unknown-kid refetch", s, body)
	}
}

// TestServeHS256IssuerNoDiscovery: with SCOPEGATE_JWT_HS256_SECRET and
// SCOPEGATE_JWT_ISSUER (no JWKS URL, default algorithms) serve fetches no
// discovery document: the issuer is for the iss check, which still holds.
func TestServeHS256IssuerNoDiscovery(t *testing.T) {
	idp := newFakeIdP(t, 0, "k1")
	g := startGateway(t, map[string]string{
		"SCOPEGATE_STORE_FILE":       basicStoreFile(t),
		"SCOPEGATE_JWT_HS256_SECRET": paritySecret,
		"SCOPEGATE_JWT_ISSUER":       idp.url,
	})
	sign := func(iss string) string {
		claims := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
		if iss != "" {
			claims["iss"] = iss
		}
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(paritySecret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if status, body := httpGet(t, g.base+"/anything", "Authorization", "Bearer "+sign(idp.url)); status != 200 {
		t.Errorf("HS256 token with the issuer: %d %s, want 200", status, body)
	}
	if status, body := httpGet(t, g.base+"/anything", "Authorization", "Bearer "+sign("https://other.example.com")); status != 401 || !strings.Contains(body, "token_invalid") {
		t.Errorf("HS256 token from another issuer: %d %s, want 401 token_invalid", status, body)
	}
	if n := idp.discHits.Load() + idp.jwksHits.Load(); n != 0 {
		t.Errorf("%d requests reached the issuer, want none", n)
	}
	if !strings.Contains(g.logs.String(), "no OpenID discovery") {
		t.Errorf("start-up does not say the issuer is checked in iss only:\n%s", g.logs)
	}
}

// TestServeJWKSRotationUnderUnknownKIDStream: with tokens of an unknown kid
// arriving steadily (every 10 ms), a key the identity provider publishes
// right after a refetch works at the next allowed refetch, within
// unknownKIDEvery (plus a margin for the 30 ms fetch and the poll), and the
// set is refetched at most once per unknownKIDEvery meanwhile. The refetch
// used to run under the deadline of the limiter wait, which the request
// that reserved the slot had spent waiting: the slot was lost and a rotated
// key took 8–10 s, or never came under a dense enough stream.
func TestServeJWKSRotationUnderUnknownKIDStream(t *testing.T) {
	idp := newFakeIdP(t, 30*time.Millisecond, "old", "new")
	serveEnv(t, subEcho(t))
	t.Setenv("SCOPEGATE_JWT_JWKS_URL", idp.url+"/jwks")
	g := startServe(t)
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+idp.sign(t, "old", "")); s != 200 {
		t.Fatalf("token of the first key: %d %s", s, body)
	}
	junk := idp.sign(t, "junk", "")
	stop := make(chan struct{})
	streamDone := make(chan struct{})
	var unexpected atomic.Int64 // junk answers other than 401
	go func() {
		defer close(streamDone)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			req, _ := http.NewRequest("GET", g.base+"/api/me", nil)
			req.Header.Set("Authorization", "Bearer "+junk)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				unexpected.Add(1)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				unexpected.Add(1)
			}
		}
	}()
	defer func() { close(stop); <-streamDone }()

	// Publish the new key just after a refetch the stream caused: the
	// worst case, the next refetch is a whole unknownKIDEvery away.
	base := idp.jwksHits.Load()
	deadline := time.Now().Add(10 * time.Second)
	for idp.jwksHits.Load() == base {
		if time.Now().After(deadline) {
			t.Fatal("the unknown-kid stream never refetched the JWKS")
		}
		time.Sleep(5 * time.Millisecond)
	}
	firstFetch := time.Now()
	hitsAtFirst := idp.jwksHits.Load()
	idp.current.Store("new")
	published := time.Now()
	fresh := idp.sign(t, "new", "")
	bound := unknownKIDEvery + time.Second
	for {
		s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+fresh)
		if s == 200 && body == "sub=alice" {
			break
		}
		if time.Since(published) > 2*bound {
			t.Fatalf("the published key still fails after %v: %d %s", time.Since(published), s, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(published)
	t.Logf("new key accepted %v after publishing", took)
	if took > bound {
		t.Errorf("new key accepted %v after publishing, want within %v", took, bound)
	}
	// At most one refetch per unknownKIDEvery since the first one seen.
	if n, most := idp.jwksHits.Load()-hitsAtFirst, int64(time.Since(firstFetch)/unknownKIDEvery)+1; n > most {
		t.Errorf("%d refetches in %v, want at most %d", n, time.Since(firstFetch), most)
	}
	if n := unexpected.Load(); n != 0 {
		t.Errorf("%d unknown-kid requests were not answered 401", n)
	}
}
