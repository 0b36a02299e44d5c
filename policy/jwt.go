package policy

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures token verification (SPEC §3 User JWTs).
type JWTConfig struct {
	Keys         KeySet        // JWKS keys; nil when only HS256 is configured
	HS256Secret  []byte        // empty: HS256 is never accepted
	Algorithms   []string      // the allow-list; empty: RS256, ES256, EdDSA, and HS256 when HS256Secret is set
	Issuer       string        // "" : iss not checked
	Audience     string        // "" : aud not checked
	Leeway       time.Duration // default 30s; negative means none
	SubjectClaim string        // default "sub"
	CacheSize    int           // verified-token cache bound; default 100000
	// CacheMaxAge bounds how long a verified token is served from the cache
	// before its signature is checked again (so a key removed from the JWKS
	// stops working within it). Default 5m. Entries never outlive exp.
	CacheMaxAge time.Duration
	// MaxTokenBytes caps the size of a token; larger ones are token_invalid
	// before any parsing. Default 8 KiB.
	MaxTokenBytes int
	// Profile makes verification also map the claims user sync needs
	// (SPEC §14) to Claims.Profile. Zero: they are not read.
	Profile ProfileConfig
	// AllowMissingExp accepts a token without an exp claim (it is then
	// never token_expired; the cache serves it for CacheMaxAge). The zero
	// value refuses such a token as token_invalid (SPEC §3,
	// SCOPEGATE_JWT_REQUIRE_EXP=true): a token that never expires cannot
	// be taken back short of rotating the key that signed it.
	AllowMissingExp bool
}

// KeySet resolves the verification key of a token, normally by its kid. It
// is satisfied by keyfunc.Keyfunc (github.com/MicahParks/keyfunc/v3). The
// engine checks that the key's type fits the token's algorithm (an RSA key
// for RS*/PS*, ECDSA for ES*, Ed25519 for EdDSA) and never asks the KeySet
// for HS256, which only the shared secret verifies.
type KeySet interface {
	Keyfunc(token *jwt.Token) (any, error)
}

// Claims is what the engine keeps of a verified token.
type Claims struct {
	Subject   string
	ExpiresAt time.Time // zero when the token has no exp
	// Profile is what user sync writes for this token, mapped once when it
	// was verified; nil unless JWTConfig.Profile is enabled.
	Profile *UserProfile
}

var knownAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true, "HS256": true,
}

// jwtVerifier verifies tokens and caches the verified ones.
type jwtVerifier struct {
	cfg     JWTConfig
	algs    []string
	keyfunc jwt.Keyfunc
	seed    maphash.Seed

	cache *tokenCache
}

type jwtEntry struct {
	token  string
	claims Claims
	until  time.Time // served from the cache before this instant
}

func newJWTVerifier(cfg JWTConfig) (*jwtVerifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	} else if cfg.Leeway < 0 {
		cfg.Leeway = 0
	}
	if cfg.SubjectClaim == "" {
		cfg.SubjectClaim = "sub"
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100000
	}
	if cfg.CacheMaxAge <= 0 {
		cfg.CacheMaxAge = 5 * time.Minute
	}
	if cfg.MaxTokenBytes <= 0 {
		cfg.MaxTokenBytes = 8 << 10
	}
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{"RS256", "ES256", "EdDSA"}
		if len(cfg.HS256Secret) > 0 {
			algs = append(algs, "HS256")
		}
	}
	v := &jwtVerifier{seed: maphash.MakeSeed(), cache: newTokenCache(cfg.CacheSize)}
	for _, a := range algs {
		if !knownAlgs[a] {
			return nil, fmt.Errorf("policy: JWT algorithm %q is not supported", a)
		}
		if a == "HS256" {
			if len(cfg.HS256Secret) == 0 {
				return nil, errors.New("policy: JWT algorithm HS256 needs a shared secret")
			}
		}
		v.algs = append(v.algs, a)
	}
	v.cfg = cfg
	v.keyfunc = v.key
	return v, nil
}

var (
	errNoKey   = errors.New("no key for this token")
	errKeyType = errors.New("key type does not fit the algorithm")
	errCrit    = errors.New(`"crit" header extensions are not supported`)
)

// key resolves the verification key and rejects alg/key-type confusion.
func (v *jwtVerifier) key(t *jwt.Token) (any, error) {
	// RFC 7515 §4.1.11: a token whose "crit" names extensions the verifier
	// does not understand must be rejected, and scopegate understands none.
	if _, ok := t.Header["crit"]; ok {
		return nil, errCrit
	}
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if t.Method.Alg() != "HS256" || len(v.cfg.HS256Secret) == 0 {
			return nil, errNoKey
		}
		return v.cfg.HS256Secret, nil
	}
	if v.cfg.Keys == nil {
		return nil, errNoKey
	}
	k, err := v.cfg.Keys.Keyfunc(t)
	if err != nil {
		return nil, err
	}
	ok := false
	switch t.Method.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, ok = k.(*rsa.PublicKey)
	case *jwt.SigningMethodECDSA:
		_, ok = k.(*ecdsa.PublicKey)
	case *jwt.SigningMethodEd25519:
		_, ok = k.(ed25519.PublicKey)
	}
	if !ok {
		return nil, errKeyType
	}
	return k, nil
}

// VerifyToken verifies the request's JWT (signature, alg allow-list, iss,
// aud, exp — required unless [JWTConfig.AllowMissingExp] —, nbf with
// leeway), from the verified-token cache when it can.
// A non-zero Reason in the Decision denies: token_expired when the token is
// past exp (plus leeway) and otherwise valid, token_invalid for everything
// else, a future nbf included. A cache hit does not allocate.
func (e *Engine) VerifyToken(req *Request) (Claims, Decision) {
	c, d := e.verifyToken(req)
	if e.trace != nil {
		e.traceToken(req, c, d)
	}
	return c, d
}

// TokenDeadline returns when a token with these claims stops being
// accepted: its exp plus the leeway; zero when it has no exp.
func (e *Engine) TokenDeadline(c Claims) time.Time {
	if c.ExpiresAt.IsZero() {
		return time.Time{}
	}
	return c.ExpiresAt.Add(e.jwt.cfg.Leeway)
}

func (e *Engine) verifyToken(req *Request) (Claims, Decision) {
	v := e.jwt
	tok := req.Cred.Token
	if req.Cred.Kind != CredentialJWT || tok == "" || len(tok) > v.cfg.MaxTokenBytes {
		return Claims{}, deny(ReasonTokenInvalid, -1)
	}
	now := req.Now
	h := maphash.String(v.seed, tok)
	ent := v.cache.get(h)
	if ent != nil && ent.token == tok {
		if !ent.claims.ExpiresAt.IsZero() && !now.Before(ent.claims.ExpiresAt.Add(v.cfg.Leeway)) {
			v.cache.drop(h)
			return Claims{}, deny(ReasonTokenExpired, -1)
		}
		if now.Before(ent.until) {
			return ent.claims, Decision{Verdict: Allow, Route: -1}
		}
		v.cache.drop(h)
	}
	claims, reason := v.verify(tok, now)
	if reason != ReasonNone {
		return Claims{}, deny(reason, -1)
	}
	until := now.Add(v.cfg.CacheMaxAge)
	if !claims.ExpiresAt.IsZero() && claims.ExpiresAt.Add(v.cfg.Leeway).Before(until) {
		until = claims.ExpiresAt.Add(v.cfg.Leeway)
	}
	v.cache.add(h, &jwtEntry{token: tok, claims: claims, until: until}, now)
	return claims, Decision{Verdict: Allow, Route: -1}
}

// verify runs the full check.
func (v *jwtVerifier) verify(tok string, now time.Time) (Claims, Reason) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algs),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	if !v.cfg.AllowMissingExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	mc := jwt.MapClaims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(tok, mc, v.keyfunc)
	if err != nil {
		if onlyExpired(err) {
			return Claims{}, ReasonTokenExpired
		}
		return Claims{}, ReasonTokenInvalid
	}
	sub, ok := mc[v.cfg.SubjectClaim].(string)
	if !ok || sub == "" {
		return Claims{}, ReasonTokenInvalid
	}
	c := Claims{Subject: sub}
	if exp, err := mc.GetExpirationTime(); err == nil && exp != nil {
		c.ExpiresAt = exp.Time
	}
	if v.cfg.Profile.Enabled {
		p := ProfileFromClaims(mc, v.cfg.Profile.TrustEmail)
		c.Profile = &p
	}
	return c, ReasonNone
}

// onlyExpired reports whether err says the token is valid but past exp. A
// bad signature stops golang-jwt before claim validation, so ErrTokenExpired
// implies a verified signature (CVE-2024-51744 was about ignoring that).
func onlyExpired(err error) bool {
	if !errors.Is(err, jwt.ErrTokenExpired) {
		return false
	}
	for _, other := range []error{
		jwt.ErrTokenSignatureInvalid, jwt.ErrTokenUnverifiable, jwt.ErrTokenMalformed,
		jwt.ErrTokenNotValidYet, jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenUsedBeforeIssued, jwt.ErrTokenInvalidSubject,
		jwt.ErrTokenInvalidId,
	} {
		if errors.Is(err, other) {
			return false
		}
	}
	return true
}
