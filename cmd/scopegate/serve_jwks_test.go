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

// TestServeJWKSFromIssuerDiscovery: with only SCOPEGATE_JWT_ISSUER set, the
// keys come from the issuer's discovery document's jwks_uri; an RS256 token
// of a known user passes, iss is checked, and a token with an unknown kid is
// token_invalid at once (no wait for the refetch limiter) and refetches the
// set at most once per 5 s.
func TestServeJWKSFromIssuerDiscovery(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var jwksHits atomic.Int64
	var issuer string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/jwks"})
		case "/jwks":
			jwksHits.Add(1)
			b64 := base64.RawURLEncoding.EncodeToString
			json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
				"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
				"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
			}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer idp.Close()
	issuer = idp.URL
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("sub=" + r.Header.Get("X-Auth-User-Sub")))
	}))
	defer up.Close()
	serveEnv(t, up.URL)
	t.Setenv("SCOPEGATE_JWT_ISSUER", issuer)
	r := startServe(t)

	sign := func(kid, iss string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice", "iss": iss, "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := "http://" + r.traffic
	if s, body := httpGet(t, base+"/api/me", "Authorization", "Bearer "+sign("k1", issuer)); s != 200 || body != "sub=alice" {
		t.Fatalf("RS256 token from the JWKS: %d %s", s, body)
	}
	if s, body := httpGet(t, base+"/api/me", "Authorization", "Bearer "+sign("k1", "https://other.example")); s != 401 || !strings.Contains(body, "token_invalid") {
		t.Errorf("wrong issuer: %d %s", s, body)
	}
	before := jwksHits.Load()
	start := time.Now()
	for i := 0; i < 5; i++ {
		if s, body := httpGet(t, base+"/api/me", "Authorization", "Bearer "+sign("unknown", issuer)); s != 401 || !strings.Contains(body, "token_invalid") {
			t.Errorf("unknown kid: %d %s", s, body)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("5 unknown-kid requests took %v: requests wait for the refetch limiter", d)
	}
	if n := jwksHits.Load() - before; n > 1 {
		t.Errorf("unknown kid refetched the JWKS %d times within 5 s, want at most 1", n)
	}
}

// TestServeIssuerDownAtStart: an identity provider that does not answer
// OpenID discovery at start-up does not stop serve (a service that is down
// is not invalid configuration): its RS256 tokens are token_invalid until
// the background retry finds the keys, then they pass. An issuer that is
// not an http(s) URL is still invalid configuration.
func TestServeIssuerDownAtStart(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	var issuer string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/jwks"})
		case "/jwks":
			b64 := base64.RawURLEncoding.EncodeToString
			json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
				"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
				"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
			}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer idp.Close()
	issuer = idp.URL
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("sub=" + r.Header.Get("X-Auth-User-Sub")))
	}))
	defer backend.Close()
	serveEnv(t, backend.URL)
	t.Setenv("SCOPEGATE_JWT_ISSUER", issuer)
	g := startServe(t)
	waitLog(t, g.logs, "OpenID discovery failed")

	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice", "iss": issuer, "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+signed); s != 401 || !strings.Contains(body, "token_invalid") {
		t.Errorf("before discovery: %d %s, want 401 token_invalid", s, body)
	}
	up.Store(true)
	waitLog(t, g.logs, "OpenID discovery succeeded")
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+signed); s != 200 || body != "sub=alice" {
		t.Errorf("after discovery: %d %s, want 200 sub=alice", s, body)
	}

	t.Run("issuer not a URL", func(t *testing.T) {
		serveEnv(t, backend.URL)
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
	keys := map[string]*rsa.PrivateKey{}
	for _, kid := range []string{"old", "new"} {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keys[kid] = k
	}
	var current atomic.Value
	current.Store("old")
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond) // a remote JWKS is not instant
		kid := current.Load().(string)
		key := keys[kid]
		b64 := base64.RawURLEncoding.EncodeToString
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	defer idp.Close()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("sub=" + r.Header.Get("X-Auth-User-Sub")))
	}))
	defer backend.Close()
	serveEnv(t, backend.URL)
	t.Setenv("SCOPEGATE_JWT_JWKS_URL", idp.URL)
	g := startServe(t)
	sign := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(keys[kid])
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+sign("old")); s != 200 {
		t.Fatalf("token of the first key: %d %s", s, body)
	}
	current.Store("new")
	if s, body := httpGet(t, g.base+"/api/me", "Authorization", "Bearer "+sign("new")); s != 200 || body != "sub=alice" {
		t.Errorf("first token of the rotated key: %d %s, want 200 after the unknown-kid refetch", s, body)
	}
}
